#!/usr/bin/env bash
# Regenerates the headline tables, ml-100k (all 943 users) and amazon-games (a 2,000-user
# sample), from the repository root:
#   bash benchmarks/experiments/headline/run.sh
# About 7 h on 2 cores for ml-100k (the three converged baselines take most of it). Each row
# is its own bench run, and a row whose result file already holds it is skipped, so the run
# can span sessions: run it from a worktree at one commit (git worktree add ../headline
# <commit>), and every file records that commit.
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # has_row, checkpoint_of
here=benchmarks/experiments/headline
out=$here/results
games="--data-path ../shared/datasets --max-users 2000"
baselines="SASRec BERT4Rec SASRec-tuned PopularityRule"
llm_rows="InstructRec-zeroshot InstructRec-LoRA InstructRec-ItemHead-compact"
llm_rows="$llm_rows InstructRec-ItemHead-hybrid InstructRec-LoRA-fused"
row() {  # row <dataset> <tag> <row> <bench options...>: one row's bench, unless it is done
  local dataset=$1 tag=$2 name=$3 file=$out/bench-$2-$3.json
  shift 3
  if has_row "$file" "$name"; then echo "have $name in $file"; return; fi
  instructrec bench --datasets "$dataset" --out $out --tag "$tag-$name" "$@"
}
for dataset in ml-100k amazon-games; do
  if [ $dataset = ml-100k ]; then data="" tag=ml-100k-uni9; else data=$games tag=amazon-games-2000u-uni9; fi
  sasrec=$out/bench-$tag-SASRec.json
  # 1. SASRec, trained to early stopping on validation: the reference, and the item
  #    embeddings and scores that the hybrid item head and the fused row read.
  row $dataset $tag SASRec $data --models SASRec
  # 2. The popularity rule; the LLM rows on the same stored candidates: zero-shot, the default
  #    main job (InstructRec-LoRA), the compact and the hybrid item head, and the default fused
  #    with step 1's SASRec (its weight fitted on validation users); then BERT4Rec and
  #    SASRec-tuned (a validation grid), to early stopping. The order only decides which rows a
  #    session that stops early has finished: each row reads nothing but step 1's file.
  for name in PopularityRule $llm_rows BERT4Rec SASRec-tuned; do
    row $dataset $tag $name $data --models SASRec,$name --stored-row SASRec=$sasrec
  done
  # 3. Every row paired over users against SASRec.
  results=()
  for name in $baselines $llm_rows; do results+=(--results $out/bench-$tag-$name.json); done
  rows=$(echo $baselines $llm_rows | tr ' ' ,)
  instructrec compare "${results[@]}" --rows $rows --title "$dataset" --out $out \
    --tag headline-$tag
done
