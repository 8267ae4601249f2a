#!/usr/bin/env bash
# Regenerates the headline tables, ml-100k (all 943 users) and amazon-games (a 2,000-user
# sample), from the repository root:
#   bash benchmarks/experiments/headline/run.sh
# About 7 h on 2 cores for ml-100k (the three converged baselines take most of it). A step
# whose result file exists is skipped, so the run can span sessions: run it from a worktree at
# one commit (git worktree add ../headline <commit>), and every file records that commit.
set -euo pipefail
here=benchmarks/experiments/headline
out=$here/results
games="--data-path ../shared/datasets --max-users 2000"
llm_rows=InstructRec-zeroshot,InstructRec-LoRA,InstructRec-ItemHead-compact
llm_rows=$llm_rows,InstructRec-ItemHead-hybrid,InstructRec-LoRA-fused
step() {  # step <the file it writes> <command...>: skipped when that file exists
  local file=$1
  shift
  if [ -f "$file" ]; then echo "have $file"; else "$@"; fi
}
for dataset in ml-100k amazon-games; do
  if [ $dataset = ml-100k ]; then data="" tag=ml-100k-uni9; else data=$games tag=amazon-games-2000u-uni9; fi
  # 1. The baselines: SASRec, BERT4Rec and SASRec-tuned (a validation grid), each trained to
  #    early stopping on validation; the popularity rule.
  step $out/bench-$tag-baselines.json instructrec bench --datasets $dataset $data \
    --models SASRec,BERT4Rec,SASRec-tuned,PopularityRule --out $out --tag $tag-baselines
  # 2. The LLM rows on the same stored candidates: zero-shot, the default main job
  #    (InstructRec-LoRA), the compact and the hybrid item head, and the default fused with
  #    step 1's SASRec (its weight fitted on validation users).
  step $out/bench-$tag-llm.json instructrec bench --datasets $dataset $data \
    --models SASRec,$llm_rows --stored-row SASRec=$out/bench-$tag-baselines.json \
    --out $out --tag $tag-llm
  # 3. Every row paired over users against SASRec.
  instructrec compare --results $out/bench-$tag-baselines.json \
    --results $out/bench-$tag-llm.json \
    --rows SASRec,SASRec-tuned,BERT4Rec,PopularityRule,$llm_rows \
    --title "$dataset" --out $out --tag headline-$tag
done
