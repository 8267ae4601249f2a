#!/usr/bin/env bash
# Regenerates this experiment on the fixed candidate draw, ml-100k, all 943 users, from the
# repository root:
#   bash benchmarks/experiments/request-readings/run.sh
# About 1.5 h on 2 cores, after the headline's step 1 (its SASRec row and checkpoint, under
# the headline's results/tmp/saved/ on this machine, which the hybrid item head reads). Each
# row is its own bench run, and a row whose result file already holds it is skipped, so the
# run can span sessions (from a worktree held at one commit, so every file records it).
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # has_row, checkpoint_of
here=benchmarks/experiments/request-readings
out=$here/results
tag=ml-100k-uni9-request-readings
sasrec=benchmarks/experiments/headline/results/bench-ml-100k-uni9-SASRec.json
[ -f "$sasrec" ] || { echo "run the headline's step 1 first: $sasrec is missing" >&2; exit 1; }
tasks="sequential psearch-specific psearch-vague psearch-vague-held-out psearch-preference"
tasks="$tasks product-search"
readings=InstructRec-ItemHead-hybrid-request-readings
hybrid=InstructRec-ItemHead-hybrid
# 1-2. The hybrid item head with request readings, and at its defaults without them, each
#    trained once at the main job's budget and scored on every task on the same stored
#    candidates, beside SASRec's scores from the headline (and the category rule, which breaks
#    its ties by them).
for name in $readings $hybrid; do
  if has_row $out/bench-$tag-$name-sequential.json $name; then echo "have $name"; continue; fi
  config=()
  [ $name = $readings ] && config=(--model-config $readings=$here/configs/request-readings.yaml)
  instructrec bench --datasets ml-100k --models SASRec,$name --stored-row SASRec=$sasrec \
    "${config[@]}" --tasks $(echo $tasks | tr ' ' ,) --out $out --tag $tag-$name
done
# 3. Each task paired over users: every row against SASRec, and request readings against the
#    hybrid without them and against the category rule.
for task in $tasks; do
  files=(--results $out/bench-$tag-$readings-$task.json --results $out/bench-$tag-$hybrid-$task.json)
  instructrec compare "${files[@]}" --rows SASRec,CategoryRule,$hybrid,$readings \
    --title "$task" --out $out --tag request-readings-$task
  instructrec compare "${files[@]}" --rows $hybrid,$readings --reference $hybrid \
    --title "$task: with request readings against without" --out $out \
    --tag request-readings-vs-hybrid-$task
  instructrec compare "${files[@]}" --rows CategoryRule,$readings --reference CategoryRule \
    --title "$task: against the category rule" --out $out --tag request-readings-vs-rule-$task
done
#    The same against the item-head experiment's hybrid with the fitted request weight (its
#    step 10: the settings of today's default hybrid, trained at its own commit), on the same
#    stored candidates.
for task in $tasks; do
  instructrec compare --results $out/bench-$tag-$readings-$task.json \
    --results benchmarks/experiments/item-head/results/bench-ml-100k-uni9-hybrid-fitted-weight-$task.json \
    --rows SASRec,CategoryRule,InstructRec-ItemHead-hybrid-fitted-weight,$readings \
    --title "$task: against the item-head experiment's hybrid" --out $out \
    --tag request-readings-vs-item-head-hybrid-$task
  instructrec compare --results $out/bench-$tag-$readings-$task.json \
    --results benchmarks/experiments/item-head/results/bench-ml-100k-uni9-hybrid-fitted-weight-$task.json \
    --rows InstructRec-ItemHead-hybrid-fitted-weight,$readings \
    --reference InstructRec-ItemHead-hybrid-fitted-weight \
    --title "$task: with request readings against the item-head experiment's hybrid" --out $out \
    --tag request-readings-minus-item-head-hybrid-$task
done
# 4. Steering over every user, six genres, trained and held-out phrasings apart, with each
#    checkpoint: the asked genre's share of the top 10 of 100 candidates, the share of users
#    whose share rises, and HR@10 of the real next item with and without the request.
for name in $readings $hybrid; do
  checkpoint=$(checkpoint_of $out/bench-$tag-$name-sequential.json $name)
  python benchmarks/instruction_following.py --checkpoint "$checkpoint" --out $out \
    --tag instruction-following-$name
done
