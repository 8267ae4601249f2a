#!/usr/bin/env bash
# Regenerates every result of this experiment: candidate-scoring speed (shared-prefix scoring
# against one sequence per candidate), the float64 exactness check, and the precision of CPU
# evaluation. About 20 minutes on 2 cores, nothing else running; from the repository root:
#   bash benchmarks/experiments/scoring-speed/run.sh
#
# What the scripts do not pin. Both build InstructRec at the defaults of the commit they run at
# and have no flag to change them. The stored files were made when the default prompt was the
# instruction layout (eval_template seq-match-1) and an item's text its title and year; at
# today's defaults the prompt is the running list (seq-list) and ml-100k's item text ends with
# its genres, so regenerated prompts and answers differ and the rates can move.
# scoring_speed.py now also checks 4 candidates a user in float64 by default (the stored
# scoring_speed.json predates that check; it runs after the timings).
set -euo pipefail
here=benchmarks/experiments/scoring-speed
out=$here/results

# 1. Speed: 4 ml-100k users, 10, 100 and 1,000 candidates each, embedded SmolLM2 in float32;
#    the naive path on the first 40 candidates of each user (scoring_speed.json).
python benchmarks/scoring_speed.py --out $out --tag scoring_speed

# 2. Exactness: both paths in float64 on 10 candidates a user, 2 users
#    (scoring_speed-float64-check.json; its stored run had 1 torch thread, so its rates are not
#    timings).
python benchmarks/scoring_speed.py --users 2 --candidates 10,100 --naive-candidates 10 \
  --float64-check 10 --out $out --tag scoring_speed-float64-check

# 3. Precision: zero-shot on 50 ml-100k test users (RecBole's seeded uni9 draw), float32 weights
#    against int8 dynamic quantization and bf16 weights (quantization.json; the script has no
#    --tag, it always writes quantization.*).
python benchmarks/quantization.py --users 50 --out $out
