#!/usr/bin/env bash
# Regenerates every result of this experiment: `instructrec serve` (zero-shot SmolLM2 on
# ml-100k) under closed-loop load, two-stage (a SASRec retriever's top 100 re-ranked) and whole
# catalogue, batched and one by one. About 45 minutes on 2 cores (the cells' recorded wall time
# is about 35 minutes, plus server starts), and SASRec's training on top when no checkpoint is
# on disk (below). From the repository root, nothing else running:
#   bash benchmarks/experiments/serving-under-load/run.sh
#
# Pinned: the stored files were made when the default prompt was the instruction layout
# (eval_template seq-match-1, requests with an instruction in vague-match-1) and an item's text
# its title and year. Today's defaults are the running list and, on ml-100k, genres at the end
# of the item text, so the server is started with both pinned (--set).
set -euo pipefail
source benchmarks/experiments/run_helpers.sh  # has_row, checkpoint_of
here=benchmarks/experiments/serving-under-load
out=$here/results
pins="--set eval_template=seq-match-1 --set item_text_categories=false"

# 0. The two-stage retriever. The stored runs re-ranked the top 100 of ml-100k's SASRec trained
#    to early stopping (the row of baselines/results/bench-ml-100k-uni9-sasrec-alone.json); its
#    checkpoint lived under benchmarks/results/tmp, which is not committed. The item-head
#    experiment's step 1 trains SASRec the same way: its checkpoint is used when that
#    experiment has been run on this machine. Otherwise serve_load.py trains its own
#    (--sasrec-epochs, 10 epochs of the bench's baseline settings, into $out/tmp/saved). The
#    retriever only picks which 100 items the LLM re-ranks; a request's cost is the LLM's.
retriever=""
sasrec=$(checkpoint_of benchmarks/experiments/item-head/results/bench-ml-100k-uni9-sasrec.json \
  SASRec 2> /dev/null || true)
if [ -f "$sasrec" ]; then
  retriever="--candidate-model $sasrec"
fi

# 1. Two-stage: 1, 4 and 16 clients batched, 16 one by one, 48 requests a cell
#    (serve_load.json).
python benchmarks/serve_load.py --dataset ml-100k $retriever --top-n 100 --settings two-stage \
  --concurrency 1,4,16 --one-by-one 16 --max-requests 48 --max-seconds 300 $pins \
  --out $out --tag serve_load

# 2. The whole catalogue (1,682 items a request, no retriever): 1 and 4 clients batched, 4 one
#    by one, at most 8 requests or 300 s of issuing a cell (serve_load-full.json). Its stored
#    command also named the retriever, which the full setting does not read.
python benchmarks/serve_load.py --dataset ml-100k --settings full --concurrency 1,4 \
  --one-by-one 4 --max-requests 8 --max-seconds 300 $pins --out $out --tag serve_load-full
