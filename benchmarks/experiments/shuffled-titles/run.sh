#!/usr/bin/env bash
# Regenerates the shuffled-titles control on the fixed candidate draw: ml-100k with every
# item's title and year moved to another item (one seeded permutation; interactions, genres
# and users unchanged), all 943 users, from the repository root:
#   bash benchmarks/experiments/shuffled-titles/run.sh
# About 1.5 h on 2 cores, after the headline's SASRec (its step 1). Each row is its
# own run of benchmarks/shuffled_titles.py (which writes the control dataset under
# $out/tmp/ and trains and scores on it); a row whose result file already holds it is skipped,
# so the run can span sessions (from a worktree held at one commit, so every file records it).
# --out is relative, so the files record paths inside the repository, not the machine's.
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # has_row, checkpoint_of
here=benchmarks/experiments/shuffled-titles
out=$here/results
tag=ml-100k-uni9-shuffled-titles
llm_rows="InstructRec-zeroshot InstructRec-LoRA InstructRec-ItemHead-compact InstructRec-ItemHead-hybrid"
row() {  # row <row> <shuffled_titles.py options...>: one row's run, unless it is done
  local name=$1 file=$out/bench-$tag-$1.json
  shift
  if has_row "$file" "$name"; then echo "have $name in $file"; return; fi
  python benchmarks/shuffled_titles.py --models "$@" --out $out --tag $tag-$name
}
# 1. SASRec reads item ids only, and the control keeps ml-100k's interactions, users, targets
#    and stored candidates (tests/test_shuffled_titles.py), so SASRec trains on the same rows as
#    on ml-100k: the headline's SASRec row, trained to early stopping, is the control's. Its
#    checkpoint (under the headline's results/tmp/saved/, on this machine) gives the hybrid
#    item head its item embeddings.
sasrec=benchmarks/experiments/headline/results/bench-ml-100k-uni9-SASRec.json
[ -f "$sasrec" ] || { echo "run the headline's step 1 first: $sasrec is missing" >&2; exit 1; }
# 2. The LLM rows, each with SASRec's scores (and checkpoint) from step 1: zero-shot; the
#    default main job (InstructRec-LoRA: negatives at 2 positions, 110 steps, the default's
#    search requests and genres in the item text); the compact item head and the hybrid item
#    head (SASRec's item embeddings as history positions and in its output vectors, through
#    "@SASRec"), at the main job's budget with today's defaults.
for name in $llm_rows; do
  row $name SASRec,$name --stored-row SASRec=$sasrec
done
# 3. Every row paired over users against SASRec (issue 34's goal for this control: the item
#    head at 0.8x SASRec's HR@1 or more), and against zero-shot (what training learned).
results=()
results+=(--results $sasrec)
for name in $llm_rows; do results+=(--results $out/bench-$tag-$name.json); done
rows=SASRec,$(echo $llm_rows | tr ' ' ,)
instructrec compare "${results[@]}" --rows $rows --title "ml-100k, shuffled titles" \
  --out $out --tag shuffled-titles-ml-100k-uni9
instructrec compare "${results[@]}" --rows $rows --reference InstructRec-zeroshot \
  --title "ml-100k, shuffled titles, against zero-shot" \
  --out $out --tag shuffled-titles-vs-zeroshot-ml-100k-uni9
