"""Where a training signal's tokens go, and the speed-up the running list can reach at most.

    python benchmarks/signal_tokens.py [--rows 2000] [--negatives 4] [--tag signal_tokens]

Counts, without running the network, the tokens that one training signal puts through the LLM
(one positive and ``--negatives`` sampled negatives, the loss of one prediction) on a seeded
sample of ml-100k's training rows, split into:

* shared: the prompt (per-prefix: instruction + history, one per signal) or the header and
  the list (running list: shared by every position of the window, so divided among them);
* positive: the positive's tokens (per-prefix: its continuation; running list: none beyond the
  list, which already holds it);
* negatives: the negatives' continuations, one segment each, in both layouts.

The negatives are the same number per signal in both layouts and cost the same tokens: however
the shared part is amortized, a running-list signal costs at least its negatives. So
``per-prefix tokens / running-list negative tokens`` bounds the speed-up in tokens, and this
bound is reported for each way of writing the items. Padding is not counted (the speed
benchmark's tokens/signal counts it).
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (layout variant, mention variant) -> settings. "title only" drops the release year, which
# SmolLM2 writes digit by digit (" (", "1", "9", "9", "5", ")").
LAYOUTS = {
    "per-prefix": {"eval_template": "seq-match-1"},
    "running-list": {"eval_template": "seq-list"},
    "running-list-window-20": {
        "eval_template": "seq-list",
        "max_history_items": 20,
        "max_prompt_tokens": 1024,
    },
    "running-list-window-50": {
        "eval_template": "seq-list",
        "max_history_items": 50,
        "max_prompt_tokens": 2048,
    },
}
# Every variant but the last pins sequential rows and titles without categories, so that each
# counts one change; the last is the defaults (categories, and in the running list half the
# rows ending with a search request).
_PLAIN = {"item_text_categories": False, "train_request_share": 0}
MENTIONS = {
    "title (year)": _PLAIN,
    "title only": {**_PLAIN, "item_text_fields": ["movie_title"]},
    "title (year), no system text": {**_PLAIN, "system_prompt": ""},
    "title only, no system text": {
        **_PLAIN,
        "item_text_fields": ["movie_title"],
        "system_prompt": "",
    },
    # the categories after the title: what search requests name (item_text_categories)
    "title (year), categories": {**_PLAIN, "item_text_categories": True},
    "the defaults: title (year), categories, search requests": {},
}


def row_tokens(model, history, positive):
    """(shared, positive, negative tokens, signals) of one training row of ``model``, with
    its request (``train_request_share``) and negatives drawn as its loss draws them."""
    builder = model.prompts
    if model.running_list:
        row = model.row_source.row(builder, history, positive)
        if not row.cuts:  # nothing to predict: the loss skips the row
            return np.zeros(4, dtype=int)

        (negatives,) = model.likelihood_loss.draw([row])
        lengths = [len(builder.piece(n)) for items in negatives for n in items]
        return np.array([len(row.ids), 0, sum(lengths), len(row.cuts)])
    (negatives,) = model._sample_negatives([history], [positive])
    ((prefix, conts),) = builder.plan(history, [positive] + negatives, target=positive).requests
    return np.array([len(prefix), len(conts[0]), sum(map(len, conts[1:])), 1])


def count(layout, mention, rows, negatives, seed=2020):
    """Mean tokens per signal (shared, positive, negatives) over ``rows`` sampled rows."""
    from recbole_instructrec.model.instructrec import _histories
    from recbole_instructrec.trainer.trainer import model_and_training_rows

    settings = {
        "state": "ERROR",
        "train_negatives": negatives,
        # negatives at every position, as when signal_tokens.md was measured
        "train_negative_positions": "all",
        "seed": seed,
        **LAYOUTS[layout],
        **MENTIONS[mention],
    }
    # The rows the trainer reads: in the running list, those that end a window.
    _, model, train = model_and_training_rows("ml-100k", settings)
    data = train._dataset.inter_feat
    picked = np.random.default_rng(seed).choice(len(data), min(rows, len(data)), replace=False)
    histories = _histories(data[model.ITEM_SEQ][picked], data[model.ITEM_SEQ_LEN][picked])
    positives = data[model.POS_ITEM_ID][picked].tolist()
    totals = np.zeros(4)
    for h, p in zip(histories, positives):
        totals += row_tokens(model, h, p)
    shared, positive, negative, signals = totals
    return {
        "layout": layout,
        "mentions": mention,
        "settings": {k: v for k, v in settings.items() if k != "state"},
        "rows": len(picked),
        "signals": int(signals),
        "signals_per_row": signals / len(picked),
        "shared_per_signal": shared / signals,
        "positive_per_signal": positive / signals,
        "negatives_per_signal": negative / signals,
        "tokens_per_signal": (shared + positive + negative) / signals,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "training-speed", "results"),
    )
    parser.add_argument("--tag", default="signal_tokens")
    parser.add_argument("--mentions", default=";".join(MENTIONS), help="';'-separated subset")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="','-separated subset")
    args = parser.parse_args()
    command = "python benchmarks/signal_tokens.py " + " ".join(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole reads the command line as settings
    rows = []
    mentions = [m for m in args.mentions.split(";") if m]
    layouts = [lay for lay in args.layouts.split(",") if lay]
    unknown = [m for m in mentions if m not in MENTIONS] + [x for x in layouts if x not in LAYOUTS]
    if unknown or "per-prefix" not in layouts:
        raise SystemExit(
            f"--mentions/--layouts: {unknown or 'per-prefix missing'}; mentions are "
            f"{list(MENTIONS)}, layouts {list(LAYOUTS)} (per-prefix is every row's reference)."
        )
    for mention in mentions:
        for layout in layouts:
            rows.append(count(layout, mention, args.rows, args.negatives))
            print(rows[-1], flush=True)
    today = rows[0]  # per-prefix, title (year), the default system text
    for row in rows:
        base = next(
            r for r in rows if r["layout"] == "per-prefix" and r["mentions"] == row["mentions"]
        )
        row["tokens_vs_per_prefix"] = base["tokens_per_signal"] / row["tokens_per_signal"]
        row["tokens_vs_today"] = today["tokens_per_signal"] / row["tokens_per_signal"]
        row["bound_vs_per_prefix"] = base["tokens_per_signal"] / (
            row["positive_per_signal"] + row["negatives_per_signal"]
        )

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    info = run_info(command)
    lines = provenance_lines(
        info,
        f"; ml-100k training rows ({args.rows} sampled per variant, seed 2020), the embedded "
        f"SmolLM2's tokenizer, {args.negatives} negatives per signal, padding not counted",
    ) + [
        "Tokens per training signal. `fewer tokens` is per-prefix tokens / this row's tokens "
        "(same item text); `at most` is per-prefix tokens / this row's positive + negative "
        "tokens: the most a free shared part could give; `vs today` is today's per-prefix "
        "(title (year), default system text) tokens / this row's.",
        "",
        "| item text | layout | signals/row | shared | positive | negatives | total | "
        "fewer tokens | at most | vs today |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mentions']} | {r['layout']} | {r['signals_per_row']:.1f} | "
            f"{r['shared_per_signal']:.1f} | {r['positive_per_signal']:.1f} | "
            f"{r['negatives_per_signal']:.1f} | {r['tokens_per_signal']:.1f} | "
            f"{r['tokens_vs_per_prefix']:.2f}x | {r['bound_vs_per_prefix']:.2f}x | "
            f"{r['tokens_vs_today']:.2f}x |"
        )
    save_report(args.out, args.tag, {"run": info, "results": rows}, lines)


if __name__ == "__main__":
    main()
