#!/usr/bin/env bash
# Regenerates this experiment on the fixed candidate draw, ml-100k, all 943 users, from the
# repository root:
#   bash benchmarks/experiments/request-readings/run.sh
# About 1.5 h on 2 cores, after the headline's step 1 (its SASRec row and checkpoint, under
# the headline's results/tmp/saved/ on this machine, which the hybrid item head reads).
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # checkpoint_of
here=benchmarks/experiments/request-readings
out=$here/results
sasrec=benchmarks/experiments/headline/results/bench-ml-100k-uni9-SASRec.json
[ -f "$sasrec" ] || { echo "run the headline's step 1 first: $sasrec is missing" >&2; exit 1; }
tasks="sequential psearch-specific psearch-vague psearch-vague-held-out psearch-preference"
tasks="$tasks product-search"
# 1-2. The hybrid item head at its defaults and the same with request readings, each trained
#    once at the main job's budget and scored on every task on the same stored candidates;
#    SASRec's scores (and the category rule, which breaks its ties by them) from the headline.
instructrec bench --datasets ml-100k \
  --models SASRec,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-request-readings \
  --stored-row SASRec=$sasrec \
  --model-config InstructRec-ItemHead-hybrid-request-readings=$here/configs/request-readings.yaml \
  --tasks $(echo $tasks | tr ' ' ,) --out $out --tag ml-100k-uni9-request-readings
# 3. Each task paired over users: every row against SASRec, and request readings against the
#    hybrid without them and against the category rule.
for task in $tasks; do
  file=$out/bench-ml-100k-uni9-request-readings-$task.json
  instructrec compare --results $file \
    --rows SASRec,CategoryRule,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-request-readings \
    --title "$task" --out $out --tag request-readings-$task
  instructrec compare --results $file \
    --rows InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-request-readings \
    --reference InstructRec-ItemHead-hybrid --title "$task: with request readings against without" \
    --out $out --tag request-readings-vs-hybrid-$task
  instructrec compare --results $file \
    --rows CategoryRule,InstructRec-ItemHead-hybrid-request-readings \
    --reference CategoryRule --title "$task: against the category rule" \
    --out $out --tag request-readings-vs-rule-$task
done
# 4. Steering over every user, six genres, trained and held-out phrasings apart, with each
#    checkpoint: the asked genre's share of the top 10 of 100 candidates, the share of users
#    whose share rises, and HR@10 of the real next item with and without the request.
first=$out/bench-ml-100k-uni9-request-readings-sequential.json
for name in InstructRec-ItemHead-hybrid InstructRec-ItemHead-hybrid-request-readings; do
  python benchmarks/instruction_following.py --checkpoint "$(checkpoint_of $first $name)" \
    --out $out --tag instruction-following-$name
done
