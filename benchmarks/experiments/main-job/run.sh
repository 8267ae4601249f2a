#!/usr/bin/env bash
# Regenerates every result of this experiment: the main job, `run_recbole --model=InstructRec
# --dataset=ml-100k`, timed in a fresh empty folder (main_job.json), then the same job with the
# settings each other file's commit had as defaults, pinned on its command line (main_job.py
# passes --key=value on to run_recbole and records it in the command). About 1.5 h on 2 cores (the
# recorded wall times add up to 87 minutes). The wall time is the result: run it from the
# repository root with nothing else on the machine:
#   bash benchmarks/experiments/main-job/run.sh
set -euo pipefail
here=benchmarks/experiments/main-job
out=$here/results
# 1. The main job at today's defaults (main_job.json). Its stored run's commit differs from
#    today's defaults only in settings the default (likelihood) head does not read.
#    On another machine, name the file by its CPU (main_job-amd-epyc.json is this step on an
#    AMD EPYC); the README says how to run main_job.json's own commit on it.
python benchmarks/main_job.py --out $out --tag main_job

# 2. Sequential rows only and titles without genres, 110 steps (main_job-sequential-only.json):
#    the commit of the stored run had no genres in item texts and no search requests.
python benchmarks/main_job.py --out $out --tag main_job-sequential-only --item_text_categories=False --train_request_share=0

# 3. The same at 140 steps (main_job-negatives-at-2-140-steps.json).
python benchmarks/main_job.py --out $out --tag main_job-negatives-at-2-140-steps --item_text_categories=False \
  --train_request_share=0 --train_steps_per_epoch=140

# 4. The listwise job: 4 negatives at every position of each running-list row, 44 steps, bf16
#    autocast on whatever the CPU (main_job-listwise.json).
python benchmarks/main_job.py --out $out --tag main_job-listwise --item_text_categories=False --train_request_share=0 \
  --train_negative_positions=all --train_steps_per_epoch=44 --enable_amp=True

# 5. The generation loss alone (no negatives), 240 steps (main_job-generation.json).
python benchmarks/main_job.py --out $out --tag main_job-generation --item_text_categories=False --train_request_share=0 \
  --train_negatives=0 --train_steps_per_epoch=240
