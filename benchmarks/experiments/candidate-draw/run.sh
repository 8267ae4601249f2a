#!/usr/bin/env bash
# Checks every stored candidate file of every experiment against each user's whole history in
# the raw atomic .inter file (ml-100k from RecBole's wheel; amazon-games from ../shared/datasets),
# from the repository root (a minute on 2 cores):
#   bash benchmarks/experiments/candidate-draw/run.sh
set -euo pipefail
here=benchmarks/experiments/candidate-draw
python benchmarks/candidate_leaks.py --files-only --data-path ../shared/datasets \
  --out $here/results --tag candidate-leaks
