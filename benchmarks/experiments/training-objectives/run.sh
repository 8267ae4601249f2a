#!/usr/bin/env bash
# Regenerates every result of this experiment: the likelihood head's training layouts and
# objectives on ml-100k (all 943 users) and the amazon-games 2,000-user sample, uni9. About 11 h
# on 2 cores (the one-epoch generation row takes 2 h of it; the 10-epoch baseline runs 1.5 h on
# ml-100k and 1 h on amazon-games). From the repository root:
#   bash benchmarks/experiments/training-objectives/run.sh
#
# Every row pins the settings it ran with, because the defaults moved after most of them ran:
# the 10-epoch baselines (configs/baselines-10-epochs.yaml) and the rows of one prompt per
# training prefix (configs/per-prefix-40-steps.yaml) their whole setup; the running-list rows
# their layout, loss, steps and item text (each config in configs/); the rows that ran in
# float32 with LoRA dropout 0.05 (the defaults of their commits) get those two by --set.
set -euo pipefail
here=benchmarks/experiments/training-objectives
out=$here/results
games="--data-path ../shared/datasets --max-users 2000"
float32="--set lora_dropout=0.05 --set enable_amp=False"
baselines="--model-config SASRec=$here/configs/baselines-10-epochs.yaml"
baselines="$baselines --model-config BERT4Rec=$here/configs/baselines-10-epochs.yaml"
per_prefix="--model-config InstructRec-zeroshot=$here/configs/per-prefix-40-steps.yaml"
per_prefix="$per_prefix --model-config InstructRec-LoRA=$here/configs/per-prefix-40-steps.yaml"

# ---------------------------------------------------------------------------------- ml-100k
# 1. The first side-by-side run: SASRec and BERT4Rec capped at 10 epochs, zero-shot, and one
#    prompt per training prefix (InstructRec-LoRA, 40 steps of 4 rows).
instructrec bench --datasets ml-100k --models SASRec,BERT4Rec,InstructRec-zeroshot,InstructRec-LoRA \
  $baselines $per_prefix --out $out --tag ml-100k-uni9
# 2. The running list at the same 40 steps of 4 rows, negatives at every position (float32,
#    LoRA dropout 0.05); paired against one prompt per prefix.
instructrec bench --datasets ml-100k --models InstructRec-LoRA-list \
  --model-config InstructRec-LoRA-list=$here/configs/running-list.yaml $float32 \
  --out $out --tag ml-100k-uni9-running-list
instructrec compare --results $out/bench-ml-100k-uni9.json \
  --results $out/bench-ml-100k-uni9-running-list.json --rows InstructRec-LoRA,InstructRec-LoRA-list \
  --reference InstructRec-LoRA --title "running list vs one prompt per prefix" \
  --out $out --tag running-list-vs-lora-ml-100k-uni9
# 3. Cheaper prompts in the running list: an empty system turn; titles without the year and
#    an empty system turn. Paired against step 2's running list.
instructrec bench --datasets ml-100k --models InstructRec-LoRA-list-nosystem \
  --model-config InstructRec-LoRA-list-nosystem=$here/configs/running-list-no-system.yaml $float32 \
  --out $out --tag ml-100k-uni9-running-list-no-system
instructrec bench --datasets ml-100k --models InstructRec-LoRA-list-title \
  --model-config InstructRec-LoRA-list-title=$here/configs/running-list-title-only.yaml $float32 \
  --out $out --tag ml-100k-uni9-running-list-title-only
instructrec compare --results $out/bench-ml-100k-uni9-running-list.json \
  --results $out/bench-ml-100k-uni9-running-list-no-system.json \
  --results $out/bench-ml-100k-uni9-running-list-title-only.json \
  --results $out/bench-ml-100k-uni9.json \
  --rows InstructRec-LoRA-list,InstructRec-LoRA-list-nosystem,InstructRec-LoRA-list-title,InstructRec-LoRA \
  --reference InstructRec-LoRA-list --title "running list: no system text, and title-only mentions" \
  --out $out --tag cheaper-prompts-vs-running-list-ml-100k-uni9
# 4. The listwise job: the running list in bf16 autocast, no LoRA dropout, 44 steps, negatives
#    at every position; paired against step 2's float32 running list.
instructrec bench --datasets ml-100k --models InstructRec-LoRA-list-fast \
  --model-config InstructRec-LoRA-list-fast=$here/configs/fast-running-list.yaml \
  --out $out --tag ml-100k-uni9-list-fast
instructrec compare --results $out/bench-ml-100k-uni9-running-list.json \
  --results $out/bench-ml-100k-uni9-list-fast.json --rows InstructRec-LoRA-list,InstructRec-LoRA-list-fast \
  --reference InstructRec-LoRA-list \
  --title "bf16, no LoRA dropout, 44 steps vs the running list in float32" \
  --out $out --tag fast-vs-running-list-ml-100k-uni9
# 5. The generation loss alone (train_negatives 0): 240 steps (the listwise job's training
#    time), and one whole epoch. Paired against one prompt per prefix, and against step 4.
instructrec bench --datasets ml-100k --models InstructRec-LoRA-generation \
  --model-config InstructRec-LoRA-generation=$here/configs/generation-main-job-budget.yaml \
  --out $out --tag ml-100k-uni9-generation
instructrec bench --datasets ml-100k --models InstructRec-LoRA-generation-epoch \
  --model-config InstructRec-LoRA-generation-epoch=$here/configs/generation-epoch.yaml \
  --out $out --tag ml-100k-uni9-generation-epoch
instructrec compare --results $out/bench-ml-100k-uni9.json \
  --results $out/bench-ml-100k-uni9-running-list.json --results $out/bench-ml-100k-uni9-list-fast.json \
  --results $out/bench-ml-100k-uni9-generation.json \
  --rows InstructRec-LoRA,InstructRec-LoRA-list,InstructRec-LoRA-list-fast,InstructRec-LoRA-generation \
  --reference InstructRec-LoRA --title "the default main job vs one prompt per prefix" \
  --out $out --tag main-job-vs-lora-ml-100k-uni9
instructrec compare --results $out/bench-ml-100k-uni9-list-fast.json \
  --results $out/bench-ml-100k-uni9-generation.json \
  --results $out/bench-ml-100k-uni9-generation-epoch.json \
  --rows InstructRec-LoRA-list-fast,InstructRec-LoRA-generation,InstructRec-LoRA-generation-epoch \
  --reference InstructRec-LoRA-list-fast \
  --title "ml-100k: the generation loss alone against the listwise default" \
  --out $out --tag generation-vs-list-fast-ml-100k-uni9
# 6. Negatives at 2 positions, the generation loss at every position, 140 steps; paired
#    against step 4 (with the generation loss alone beside it).
instructrec bench --datasets ml-100k --models InstructRec-LoRA-negatives-at-2 \
  --model-config InstructRec-LoRA-negatives-at-2=$here/configs/negatives-at-2-positions.yaml \
  --out $out --tag ml-100k-uni9-negatives-at-2
instructrec compare --results $out/bench-ml-100k-uni9-list-fast.json \
  --results $out/bench-ml-100k-uni9-negatives-at-2.json --results $out/bench-ml-100k-uni9-generation.json \
  --rows InstructRec-LoRA-list-fast,InstructRec-LoRA-negatives-at-2,InstructRec-LoRA-generation \
  --reference InstructRec-LoRA-list-fast \
  --title "ml-100k: negatives at 2 positions against the listwise default" \
  --out $out --tag negatives-at-2-vs-list-fast-ml-100k-uni9
# 7. The same at 110 steps (the default main job's objective and budget, sequential rows
#    only, titles without genres); paired against step 4, with step 6 beside it.
instructrec bench --datasets ml-100k --models InstructRec-LoRA-negatives-at-2-110 \
  --model-config InstructRec-LoRA-negatives-at-2-110=$here/configs/negatives-at-2-110-steps.yaml \
  --out $out --tag ml-100k-uni9-negatives-at-2-110
instructrec compare --results $out/bench-ml-100k-uni9-list-fast.json \
  --results $out/bench-ml-100k-uni9-negatives-at-2.json \
  --results $out/bench-ml-100k-uni9-negatives-at-2-110.json \
  --rows InstructRec-LoRA-list-fast,InstructRec-LoRA-negatives-at-2-110,InstructRec-LoRA-negatives-at-2 \
  --reference InstructRec-LoRA-list-fast \
  --title "ml-100k: the default (negatives at 2 positions, 110 steps) and 140 steps against the listwise job" \
  --out $out --tag default-vs-list-fast-ml-100k-uni9

# ------------------------------------------------------------- amazon-games, 2,000 users
# 8. The first side-by-side run, as step 1.
instructrec bench --datasets amazon-games $games \
  --models SASRec,BERT4Rec,InstructRec-zeroshot,InstructRec-LoRA $baselines $per_prefix \
  --out $out --tag amazon-games-2000u-uni9
# 9. The listwise job (as step 4), the generation loss alone at its training time (as step 5),
#    negatives at 2 positions at 140 and at 110 steps (as steps 6 and 7).
instructrec bench --datasets amazon-games $games --models InstructRec-LoRA-listwise \
  --model-config InstructRec-LoRA-listwise=$here/configs/listwise-main-job.yaml \
  --out $out --tag amazon-games-2000u-uni9-listwise
instructrec bench --datasets amazon-games $games --models InstructRec-LoRA-generation \
  --model-config InstructRec-LoRA-generation=$here/configs/generation-main-job-budget.yaml \
  --out $out --tag amazon-games-2000u-uni9-generation
instructrec bench --datasets amazon-games $games --models InstructRec-LoRA-negatives-at-2 \
  --model-config InstructRec-LoRA-negatives-at-2=$here/configs/negatives-at-2-positions.yaml \
  --out $out --tag amazon-games-2000u-uni9-negatives-at-2
instructrec bench --datasets amazon-games $games --models InstructRec-LoRA-negatives-at-2-110 \
  --model-config InstructRec-LoRA-negatives-at-2-110=$here/configs/negatives-at-2-110-steps.yaml \
  --out $out --tag amazon-games-2000u-uni9-negatives-at-2-110
# 10. Every amazon-games row paired against the listwise job.
instructrec compare --results $out/bench-amazon-games-2000u-uni9.json \
  --results $out/bench-amazon-games-2000u-uni9-listwise.json \
  --results $out/bench-amazon-games-2000u-uni9-generation.json \
  --results $out/bench-amazon-games-2000u-uni9-negatives-at-2.json \
  --results $out/bench-amazon-games-2000u-uni9-negatives-at-2-110.json \
  --rows InstructRec-LoRA-listwise,InstructRec-LoRA-negatives-at-2,InstructRec-LoRA-negatives-at-2-110,InstructRec-LoRA-generation,InstructRec-LoRA,InstructRec-zeroshot \
  --reference InstructRec-LoRA-listwise \
  --title "amazon-games: the listwise main job against negatives at 2 positions, the generation loss alone and one prompt per prefix" \
  --out $out --tag objectives-amazon-games-2000u-uni9
