#!/usr/bin/env bash
# Regenerates the task-form rows of this experiment (about 1 h on 2 cores, T1 half of it), from
# the repository root:
#   bash benchmarks/experiments/task-forms/run.sh
# ml-100k, a seeded 150-user sample, one stored candidate draw for every row. Each row is LoRA
# trained for 20 steps of 4 examples with its own template (configs/<form>.yaml: the template,
# titles without categories, sequential rows only) and evaluated with it; no validation.
set -euo pipefail
here=benchmarks/experiments/task-forms
out=$here/results
c=$here/configs
# Every row is an InstructRec row. Pinned beside the recorded budget (20 steps, no validation):
# LoRA dropout 0.05 and no autocast, the defaults of the commits these rows ran at (today's
# defaults are 0.0 and autocast where bf16 is native).
pins="--set train_steps_per_epoch=20 --set eval_step=0 --set lora_dropout=0.05 --set enable_amp=False"
# 1. The five forms that cut no prompt: T2 matching (seq-match-1), T3 reranking, product search,
#    personalized search, and the mixed templates (evaluated on sequential recommendation).
instructrec bench --datasets ml-100k --max-users 150 \
  --models InstructRec-LoRA-T2,InstructRec-LoRA-T3,InstructRec-LoRA-search,InstructRec-LoRA-psearch,InstructRec-LoRA-mixed \
  --model-config InstructRec-LoRA-T2=$c/T2.yaml --model-config InstructRec-LoRA-T3=$c/T3.yaml \
  --model-config InstructRec-LoRA-search=$c/search.yaml \
  --model-config InstructRec-LoRA-psearch=$c/psearch.yaml \
  --model-config InstructRec-LoRA-mixed=$c/mixed.yaml \
  $pins --out $out --tag ml-100k-150u-forms
# 2. T0 pointwise (P(Yes) - P(No) per candidate), on the same users and candidates.
instructrec bench --datasets ml-100k --max-users 150 --models InstructRec-LoRA-T0 \
  --model-config InstructRec-LoRA-T0=$c/T0.yaml \
  $pins --out $out --tag ml-100k-150u-forms-tokenization-fix
# 3. T1 pairwise (each candidate against its neighbours, both orders), the same way.
instructrec bench --datasets ml-100k --max-users 150 --models InstructRec-LoRA-T1 \
  --model-config InstructRec-LoRA-T1=$c/T1.yaml \
  $pins --out $out --tag ml-100k-150u-forms-tokenization-fix-T1
