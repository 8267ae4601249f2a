#!/usr/bin/env bash
# Regenerates every result of this experiment (about 7 h on 2 cores; SASRec takes 80 min and
# step 4 70 min), from the repository root:
#   bash benchmarks/experiments/item-head/run.sh
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # has_row, checkpoint_of
here=benchmarks/experiments/item-head
out=$here/results
# 1. SASRec, trained to early stopping on validation: the reference, and the item embeddings
#    that the SASRec hybrid reads.
instructrec bench --datasets ml-100k --models SASRec \
  --model-config SASRec=$here/configs/sasrec.yaml --out $out --tag ml-100k-uni9-sasrec
#    Every stored negative checked against each user's whole history in the raw .inter file,
#    beside the earlier draw's file.
python benchmarks/candidate_leaks.py --files-only --out $out --tag candidate-leaks \
  --candidates $out/candidates-ml-100k-uni9.jsonl \
  --candidates benchmarks/experiments/baselines/results/candidates-ml-100k-uni9.jsonl
# 2. The SASRec hybrid item head and the compact item head, at the main job's budget, on the
#    sequential task and on personalized search with the target's genres, against step 1's
#    SASRec (its scores, and its checkpoint for the hybrid). The search signals weigh as much
#    as the sequential ones (train_request_weight 1; step 10 fits the weight).
instructrec bench --datasets ml-100k \
  --models SASRec,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-compact \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json --set train_request_weight=1.0 \
  --tasks sequential,psearch-specific --out $out --tag ml-100k-uni9-item-heads
#    Each task paired over users: every row against SASRec, and the hybrid against the compact
#    item head.
for task in sequential psearch-specific; do
  instructrec compare --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows SASRec,CategoryRule,InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
    --title "$task" --out $out --tag item-heads-$task
  instructrec compare --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
    --reference InstructRec-ItemHead-compact --title "$task: hybrid vs compact" \
    --out $out --tag hybrid-vs-compact-$task
done
# 3. Full ranking (RecBole's full mode: every item ranked for each test user), the same three
#    checkpoints evaluated again, untrained further.
heads=$out/bench-ml-100k-uni9-item-heads-sequential.json
instructrec bench --datasets ml-100k --protocol full \
  --models SASRec,InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
  --trained-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --trained-row InstructRec-ItemHead-compact=$heads \
  --trained-row InstructRec-ItemHead-hybrid=$heads \
  --out $out --tag ml-100k-full-item-heads
# 4. The longer budget: the hybrid item head trained for up to three epochs, each validated on
#    every validation user, the best one tested; paired against SASRec and against step 2's
#    one-epoch hybrid.
instructrec bench --datasets ml-100k --models SASRec,InstructRec-ItemHead-hybrid-3epochs \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --model-config InstructRec-ItemHead-hybrid-3epochs=$here/configs/hybrid-three-epochs.yaml \
  --tasks sequential,psearch-specific --out $out --tag ml-100k-uni9-hybrid-longer
for task in sequential psearch-specific; do
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-longer-$task.json \
    --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows SASRec,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-3epochs \
    --title "$task: the longer budget" --out $out --tag hybrid-longer-$task
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-longer-$task.json \
    --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-3epochs \
    --reference InstructRec-ItemHead-hybrid --title "$task: three epochs against one" \
    --out $out --tag hybrid-epochs-$task
done
# 5. The other instruction tasks (a vague intention, with its held-out phrasings apart; an
#    explicit preference; product search), step 2's item heads evaluated again, untrained
#    further, on the same stored candidates.
instructrec bench --datasets ml-100k \
  --models SASRec,InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --trained-row InstructRec-ItemHead-compact=$heads \
  --trained-row InstructRec-ItemHead-hybrid=$heads \
  --tasks psearch-vague,psearch-vague-held-out,psearch-preference,product-search \
  --out $out --tag ml-100k-uni9-item-heads-more-tasks
for task in psearch-vague psearch-vague-held-out psearch-preference product-search; do
  instructrec compare --results $out/bench-ml-100k-uni9-item-heads-more-tasks-$task.json \
    --rows SASRec,CategoryRule,InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
    --title "$task" --out $out --tag item-heads-$task
done
# 6. `instructrec serve` with step 2's hybrid item head: latency of a whole-catalogue request
#    (no retriever: every item scored from one pass), one client and four.
hybrid=$(checkpoint_of "$heads" InstructRec-ItemHead-hybrid)
python benchmarks/serve_load.py --checkpoint "$hybrid" --settings full --concurrency 1,4 \
  --one-by-one '' --max-requests 32 --out $out --tag serve-load-hybrid
# 7. The popularity rule (each stored candidate by its training interactions), the simplest
#    honest baseline, on the same stored candidates; every row paired against it on the
#    sequential task.
instructrec bench --datasets ml-100k --models SASRec,PopularityRule \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json --out $out --tag ml-100k-uni9-popularity
instructrec compare --results $out/bench-ml-100k-uni9-popularity.json \
  --results $out/bench-ml-100k-uni9-item-heads-sequential.json \
  --rows PopularityRule,SASRec,InstructRec-ItemHead-compact,InstructRec-ItemHead-hybrid \
  --reference PopularityRule --title "sequential: against the popularity rule" --out $out \
  --tag item-heads-vs-popularity
# 8. The hybrid item head trained on sequential rows only (no search requests mixed in), at the
#    main job's budget; paired against SASRec and against step 2's hybrid.
instructrec bench --datasets ml-100k --models SASRec,InstructRec-ItemHead-hybrid-sequential-only \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --model-config InstructRec-ItemHead-hybrid-sequential-only=$here/configs/hybrid-sequential-only.yaml \
  --tasks sequential,psearch-specific --out $out --tag ml-100k-uni9-hybrid-sequential-only
for task in sequential psearch-specific; do
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-sequential-only-$task.json \
    --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows SASRec,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-sequential-only \
    --title "$task: sequential rows only" --out $out --tag hybrid-sequential-only-$task
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-sequential-only-$task.json \
    --results $out/bench-ml-100k-uni9-item-heads-$task.json \
    --rows InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-sequential-only \
    --reference InstructRec-ItemHead-hybrid --title "$task: sequential rows only against mixed" \
    --out $out --tag hybrid-sequential-only-vs-mixed-$task
done
# 9. Full ranking of step 8's hybrid (next-item rows only), its checkpoint and SASRec's
#    evaluated again, untrained further.
instructrec bench --datasets ml-100k --protocol full \
  --models SASRec,InstructRec-ItemHead-hybrid-sequential-only \
  --trained-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --trained-row InstructRec-ItemHead-hybrid-sequential-only=$out/bench-ml-100k-uni9-hybrid-sequential-only-sequential.json \
  --out $out --tag ml-100k-full-hybrid-sequential-only
# 10. The weight of the search signals fitted on validation users: the hybrid trained at
#     train_request_weight 1, 0.3 and 0.1 (one epoch each), the point with the best mean
#     validation NDCG@5 over the next-item, specific and vague tasks tested on every task;
#     paired against SASRec and against step 2's hybrid (weight 1, validated on the next item
#     alone).
instructrec bench --datasets ml-100k --models SASRec,InstructRec-ItemHead-hybrid-fitted-weight \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json \
  --model-config InstructRec-ItemHead-hybrid-fitted-weight=$here/configs/hybrid-request-weight.yaml \
  --tasks sequential,psearch-specific,psearch-vague,psearch-vague-held-out,psearch-preference,product-search \
  --out $out --tag ml-100k-uni9-hybrid-fitted-weight
#     Each task paired over users: SASRec, the category rule, step 2's hybrid and the fitted
#     one against SASRec; the fitted one against step 2's.
for task in sequential psearch-specific psearch-vague psearch-vague-held-out psearch-preference \
  product-search; do
  case $task in
    sequential | psearch-specific) earlier=$out/bench-ml-100k-uni9-item-heads-$task.json ;;
    *) earlier=$out/bench-ml-100k-uni9-item-heads-more-tasks-$task.json ;;
  esac
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-fitted-weight-$task.json \
    --results $earlier \
    --rows SASRec,CategoryRule,InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-fitted-weight \
    --title "$task: the fitted request weight" --out $out --tag hybrid-fitted-weight-$task
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-fitted-weight-$task.json \
    --results $earlier \
    --rows InstructRec-ItemHead-hybrid,InstructRec-ItemHead-hybrid-fitted-weight \
    --reference InstructRec-ItemHead-hybrid --title "$task: fitted weight against weight 1" \
    --out $out --tag hybrid-fitted-vs-weight-one-$task
done
# 11. Steering over every user with step 10's hybrid: for six genres, trained and held-out
#     phrasings apart, the asked genre's share of the top 10 of 100 candidates, the share of
#     users whose share rises, and HR@10 of the real next item with and without the request.
fitted=$(checkpoint_of $out/bench-ml-100k-uni9-hybrid-fitted-weight-sequential.json \
  InstructRec-ItemHead-hybrid-fitted-weight)
python benchmarks/instruction_following.py --checkpoint "$fitted" --out $out \
  --tag instruction-following-hybrid-fitted-weight
# 12. The page of `instructrec serve` with step 10's hybrid, whole catalogue, in headless
#     Chromium: the README's screenshot.
instructrec serve --checkpoint "$fitted" --port 8765 &
server=$!
until curl -sf http://127.0.0.1:8765/health > /dev/null; do sleep 2; done
python scripts/page_screenshot.py --url http://127.0.0.1:8765 --user 1 \
  --instruction "something scary for tonight" --out docs/serve.png
kill $server
# 13. The hybrid item head fused with step 1's SASRec (z-scores added, the weight fitted on
#     validation users; the row "before fusion" is the same pass's item-head scores alone), on
#     the sequential task and with the target's genres, paired against SASRec.
instructrec bench --datasets ml-100k --models SASRec,InstructRec-ItemHead-hybrid-fused \
  --stored-row SASRec=$out/bench-ml-100k-uni9-sasrec.json --tasks sequential,psearch-specific \
  --out $out --tag ml-100k-uni9-hybrid-fused
for task in sequential psearch-specific; do
  instructrec compare --results $out/bench-ml-100k-uni9-hybrid-fused-$task.json \
    --rows "SASRec,InstructRec-ItemHead-hybrid-fused before fusion,InstructRec-ItemHead-hybrid-fused" \
    --title "$task: the hybrid item head fused with SASRec" --out $out --tag hybrid-fused-$task
done
