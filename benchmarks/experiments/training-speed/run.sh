#!/usr/bin/env bash
# Regenerates every result of this experiment: the training-speed runs (signals per second) and
# the token counts (tokens per signal). Roughly 40 minutes on 2 cores: the timed steps the files
# record add up to under 10 minutes; every variant also loads the data and the model in its own
# process. Run it from the repository root with nothing else on the machine:
#   bash benchmarks/experiments/training-speed/run.sh
#
# What the scripts do not pin. training_speed.py sets, per variant, the layout, the precision,
# the LoRA dropout and the negatives (with train_negative_positions: all unless a variant says
# otherwise); everything else is the default of the commit it runs at, and the script has no
# flag to change that. training_speed.json and training_speed-negative-positions.json were
# measured with titles (year) and sequential rows only; at today's defaults ml-100k's item text
# ends with its genres and half the running-list rows end with a search request (as in
# training_speed-item-head-mentions.json, where the item head's train_request_weight was 1.0,
# not today's 0.3). A regenerated file therefore counts more tokens a signal than the stored one.
# signal_tokens.py pins titles without genres and sequential rows in every item text but "the
# defaults", so its files regenerate as they ran.
set -euo pipefail
here=benchmarks/experiments/training-speed
out=$here/results

# 1. Signals per second, one prompt per prefix against the running list, by item text and
#    precision, 3 timed steps each (training_speed.json). Its command ran the script's 12
#    variants of that commit; the list is pinned, since the script now has more. Five of them
#    (the bf16-autocast and generation-only variants) run bf16 autocast: on an AMD EPYC without
#    native bf16 they run far slower than in the file, so rerun this step on a CPU
#    that has it (avx512_bf16 or AMX) and say which.
python benchmarks/training_speed.py --steps 3 \
  --variants per-prefix,running-list,per-prefix-no-system,running-list-no-system,per-prefix-title-only-no-system,running-list-title-only-no-system,running-list-no-lora-dropout,running-list-bf16-autocast,per-prefix-bf16-autocast-no-lora-dropout,running-list-bf16-autocast-no-lora-dropout,per-prefix-generation-only,running-list-generation-only \
  --out $out --tag training_speed

# 2. Negatives at every position against negatives at 2 or 1 random positions of a row
#    (training_speed-negative-positions.json).
python benchmarks/training_speed.py --steps 4 \
  --variants running-list-bf16-autocast-no-lora-dropout,running-list-negatives-at-2-positions,running-list-negatives-at-1-position \
  --out $out --tag training_speed-negative-positions

# 3. The item head (a softmax over the catalogue, no negative segments) with title, compact and
#    both mentions, against negatives at 2 positions, 6 timed steps each
#    (training_speed-item-head-mentions.json).
python benchmarks/training_speed.py \
  --variants running-list-negatives-at-2-positions,running-list-item-head,running-list-item-head-compact,running-list-item-head-both \
  --out $out --tag training_speed-item-head-mentions

# 4. Where a signal's tokens go: counted, not timed, on 2,000 sampled training rows a variant,
#    four item texts in four layouts (signal_tokens.json). Its command ran the script's four
#    item texts of that commit; the list is pinned, since the script now has six.
python benchmarks/signal_tokens.py \
  --mentions "title (year);title only;title (year), no system text;title only, no system text" \
  --out $out --tag signal_tokens

# 5. The same count with genres in the item text, and at the defaults (genres and search
#    requests), on 500 rows a variant (signal_tokens-categories.json).
python benchmarks/signal_tokens.py --rows 500 \
  --mentions "title (year);title (year), categories;the defaults: title (year), categories, search requests" \
  --layouts per-prefix,running-list --out $out --tag signal_tokens-categories
