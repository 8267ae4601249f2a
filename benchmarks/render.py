"""Writes every results table of the README and of each experiment's README
(``benchmarks/experiments/*/README.md``) from the result files, and the index of experiments in
docs/results.md and benchmarks/experiments/README.md from the experiments' READMEs.

    python benchmarks/render.py          # rewrite the generated blocks
    python benchmarks/render.py --check  # exit 1 if a committed block differs from its files

A generated block sits between ``<!-- TABLE name -->`` and ``<!-- /TABLE -->`` (the README's
headline block between its HEADLINE markers, an index between ``<!-- EXPERIMENTS -->`` and
``<!-- /EXPERIMENTS -->``); the text around the blocks is written by hand and left alone. Each
table opens with the file it was rendered from, that file's commit and its command, so no number
is typed twice. A table's file is named ``<experiment>/<file>``: the file under
``benchmarks/experiments/<experiment>/results/``.
"""

import argparse
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
RESULTS_DOC = os.path.join(ROOT, "docs", "results.md")
EXPERIMENTS = os.path.join(ROOT, "benchmarks", "experiments")
EXPERIMENT_READMES = os.path.join(EXPERIMENTS, "*", "README.md")
EXPERIMENTS_INDEX = os.path.join(EXPERIMENTS, "README.md")
# The index lists these first, in this order (the front door's tables, then what they rest on);
# every other experiment follows by name.
EXPERIMENTS_FIRST = ("headline", "item-head", "instruction-tasks", "baselines")
START, END = "<!-- HEADLINE:START (benchmarks/render.py) -->", "<!-- HEADLINE:END -->"
HEADLINES = (
    ("headline/headline-ml-100k-uni9.json", "ml-100k, all 943 users, uni9"),
    ("headline/headline-amazon-games-2000u-uni9.json", "amazon-games, 2,000-user sample, uni9"),
)
# The row that trains what `run_recbole --model=InstructRec` trains: marked in the headline.
DEFAULT_ROW = "InstructRec-LoRA"
BLOCK = re.compile(r"(<!-- TABLE (\S+) -->\n)(.*?)(<!-- /TABLE -->)", re.S)
INDEX_BLOCK = re.compile(r"(<!-- EXPERIMENTS -->\n)(.*?)(<!-- /EXPERIMENTS -->)", re.S)

# ----------------------------------------------------------- the tables of the experiments' READMEs
# name: (file, rows, columns). rows: a "/"-path to a list of records, or to a mapping whose keys
# become the first column; or a list of (label, path) pairs. columns: (header, path, format).
METRICS = [("HR@1", "metrics/hit@1", "4f"), ("HR@5", "metrics/hit@5", "4f")]
METRICS += [("NDCG@5", "metrics/ndcg@5", "4f")]
BENCH = [("model", "model", "s")] + METRICS
BENCH_TIMED = BENCH + [("train s", "train_seconds", "0f"), ("eval s", "eval_seconds", "0f")]
BENCH_SIGNALS = BENCH_TIMED + [("training signals", "training_signals", "d")]
CONVERGED = BENCH + [
    ("stopped by", "convergence/stop_reason", "s"),
    ("best epoch", "convergence/best_epoch", "d"),
    ("epochs run", "convergence/epochs_run", "d"),
    ("train s", "train_seconds", "0f"),
]
FUSION_ROWS = [("LLM alone", "a_alone"), ("SASRec alone", "b_alone"), ("fused", "fused")]
FUSION = [
    ("scores", "_key", "s"),
    ("HR@1", "hit@1", "4f"),
    ("HR@5", "hit@5", "4f"),
    ("NDCG@5", "ndcg@5", "4f"),
]
SERVE_LOAD = [
    ("setting", "setting", "s"),
    ("server", "mode", "s"),
    ("clients", "concurrency", "d"),
    ("answered", "answered", "d"),
    ("sent", "requests", "d"),
    ("p50 ms", "p50_ms", "0f"),
    ("p95 ms", "p95_ms", "0f"),
    ("p99 ms", "p99_ms", "0f"),
    ("req/s", "throughput_rps", "3f"),
    ("mean batch", "mean_batch_size", "2f"),
    ("errors", "error_count", "d"),
    ("lost", "lost", "d"),
]
SERVE_SPEEDUP = [
    ("setting", "setting", "s"),
    ("clients", "concurrency", "d"),
    ("batched req/s", "batched_rps", "3f"),
    ("one by one req/s", "one_by_one_rps", "3f"),
    ("speed-up", "speedup", "2f"),
    ("p50 ms batched", "p50_ms_batched", "0f"),
    ("p50 ms one by one", "p50_ms_one_by_one", "0f"),
]
TRAINING_SPEED = [
    ("variant", "variant", "s"),
    ("negatives/signal", "negatives_per_signal", "1f"),
    ("signals/s", "signals_per_s", "2f"),
    ("vs first row", "signals_per_s_vs_first", "1f"),
    ("vs per-prefix twin", "signals_per_s_vs_per_prefix_twin", "1f"),
    ("tokens/signal", "tokens_per_signal", "0f"),
    ("training rows per epoch", "training_rows", "d"),
    ("projected epoch h", "projected_epoch_hours", "1f"),
    ("peak RSS MB", "peak_rss_mb", "0f"),
]
# the main job's own record (benchmarks/main_job.py): one run, RecBole's test negatives
MAIN_JOB_RUN = (
    [("run_recbole --model=InstructRec --dataset=ml-100k", "result")],
    [
        ("command", "_key", "s"),
        ("wall s", "wall_seconds", "0f"),
        ("training signals", "training_signals", "d"),
        ("test HR@1", "test_result/hit@1", "4f"),
        ("test NDCG@5", "test_result/ndcg@5", "4f"),
        ("valid NDCG@5 (100 users)", "best_valid/ndcg@5", "4f"),
    ],
)

STEERING = [
    ("asked for", "category", "s"),
    ("phrasings", "phrasings", "s"),
    ("users", "users", "d"),
    ("share in top 10, no instruction", "share_before", "3f"),
    ("with it", "share_after", "3f"),
    ("users whose share rises", "users_whose_share_rises", "3f"),
    ("HR@10, no instruction", "hit_before", "3f"),
    ("with it", "hit_after", "3f"),
]
SIGNAL_TOKENS = [
    ("item text", "mentions", "s"),
    ("layout", "layout", "s"),
    ("signals/row", "signals_per_row", "1f"),
    ("shared", "shared_per_signal", "1f"),
    ("positive", "positive_per_signal", "1f"),
    ("negatives", "negatives_per_signal", "1f"),
    ("tokens/signal", "tokens_per_signal", "1f"),
    ("fewer tokens (same text)", "tokens_vs_per_prefix", "2f"),
    ("at most (same text)", "bound_vs_per_prefix", "2f"),
    ("fewer than today", "tokens_vs_today", "2f"),
]
ITEM_HEAD = "item-head"
LEAKS = [
    ("candidate file", "candidate_file", "s"),
    ("rows", "rows", "d"),
    ("rows with a negative the user interacted with", "rows_with_a_leaked_negative", "d"),
]
FULL_RANKING = (
    [("model", "model", "s")]
    + [
        (f"{name}@{k}", f"metrics/{key}@{k}", "4f")
        for k in (10, 20)
        for name, key in (("HR", "hit"), ("NDCG", "ndcg"))
    ]
    + [
        ("eval s", "eval_seconds", "0f"),
        ("s per user", lambda row: row["eval_seconds"] / row["n_test_users"], "3f"),
    ]
)
FITTED_WEIGHT = f"{ITEM_HEAD}/bench-ml-100k-uni9-hybrid-fitted-weight"
GRID_POINTS = [
    ("train_request_weight", "settings/train_request_weight", "2f"),
    ("mean validation NDCG@5 (3 tasks)", "convergence/best_valid_score", "4f"),
    ("train and validation s", "convergence/seconds", "0f"),
]


def _grid_points(result):
    """The validation-grid points of a result's one tuned row."""
    return next(r["validation_grid"]["points"] for r in result["results"] if r["validation_grid"])


TABLES = {
    "item-head-candidate-leaks": (f"{ITEM_HEAD}/candidate-leaks.json", "candidate_files", LEAKS),
    "candidate-draw-leaks": ("candidate-draw/candidate-leaks.json", "candidate_files", LEAKS),
    "item-head-sasrec": (f"{ITEM_HEAD}/bench-ml-100k-uni9-sasrec.json", "results", CONVERGED),
    "item-head-longer-training": (
        f"{ITEM_HEAD}/bench-ml-100k-uni9-hybrid-longer-sequential.json",
        "results",
        CONVERGED + [("training signals", "training_signals", "d")],
    ),
    "item-head-serve": (f"{ITEM_HEAD}/serve-load-hybrid.json", "cells", SERVE_LOAD),
    "item-head-request-weight-grid": (
        f"{FITTED_WEIGHT}-sequential.json",
        _grid_points,
        GRID_POINTS,
    ),
    "steering-hybrid": (
        f"{ITEM_HEAD}/instruction-following-hybrid-fitted-weight.json",
        "summary_by_guidance/0.0",
        STEERING,
    ),
    "item-head-full-ranking-sequential-only": (
        f"{ITEM_HEAD}/bench-ml-100k-full-hybrid-sequential-only.json",
        "results",
        FULL_RANKING,
    ),
    "item-head-full-ranking": (
        f"{ITEM_HEAD}/bench-ml-100k-full-item-heads.json",
        "results",
        FULL_RANKING,
    ),
    "steering": (
        "instruction-tasks/instruction-following-ml-100k-default.json",
        "summary_by_guidance/0.0",
        STEERING,
    ),
    "steering-guidance-1": (
        "instruction-tasks/instruction-following-ml-100k-default.json",
        "summary_by_guidance/1.0",
        STEERING,
    ),
    "steering-item-head": (
        "instruction-tasks/instruction-following-ml-100k-item-head.json",
        "summary_by_guidance/0.0",
        STEERING,
    ),
    "ml-100k-sasrec-alone": (
        "baselines/bench-ml-100k-uni9-sasrec-alone.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-bert4rec-alone": (
        "baselines/bench-ml-100k-uni9-bert4rec-alone.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-bert4rec-converge": (
        "baselines/bench-ml-100k-uni9-bert4rec-converge.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-sasrec-tuned-converge": (
        "baselines/bench-ml-100k-uni9-sasrec-tuned-converge.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-converged": (
        "baselines/bench-ml-100k-uni9-converged-sasrec.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-converged-tuned-bert4rec": (
        "baselines/bench-ml-100k-uni9-converged-tuned-bert4rec.json",
        "results",
        CONVERGED,
    ),
    "ml-100k-time-limited": ("baselines/bench-ml-100k-uni9-converged.json", "results", CONVERGED),
    "ml-100k-bert4rec-time-limited": (
        "baselines/bench-ml-100k-uni9-bert4rec.json",
        "results",
        CONVERGED,
    ),
    "amazon-converged": (
        "baselines/bench-amazon-games-2000u-uni9-converged.json",
        "results",
        CONVERGED,
    ),
    "amazon-sasrec-no-time-limit": (
        "baselines/bench-amazon-games-2000u-uni9-sasrec-no-time-limit.json",
        "results",
        CONVERGED,
    ),
    "amazon-bert4rec-alone": (
        "baselines/bench-amazon-games-2000u-uni9-bert4rec-alone.json",
        "results",
        CONVERGED,
    ),
    "fusion-ml-100k-lora": (
        "collaborative-signal/fusion-ml-100k-lora-sasrec-popularity-aware.json",
        FUSION_ROWS,
        FUSION,
    ),
    "serve-load": ("serving-under-load/serve_load.json", "cells", SERVE_LOAD),
    "serve-load-full": ("serving-under-load/serve_load-full.json", "cells", SERVE_LOAD),
    "serve-load-speedup": (
        "serving-under-load/serve_load.json",
        "speedup_over_one_by_one",
        SERVE_SPEEDUP,
    ),
    "serve-load-full-speedup": (
        "serving-under-load/serve_load-full.json",
        "speedup_over_one_by_one",
        SERVE_SPEEDUP,
    ),
    "two-stage-full": (
        "collaborative-signal/two-stage-full-ml-100k.json",
        "rows",
        [("model", "_key", "s")]
        + [(f"HR@{k}", f"hit@{k}", "4f") for k in (1, 5, 10, 20)]
        + [("NDCG@10", "ndcg@10", "4f"), ("wall s", "wall_s", "0f")],
    ),
    "scoring-speed": (
        "scoring-speed/scoring_speed.json",
        "results",
        [
            ("candidates/user", "candidates_per_user", "d"),
            ("ours cand/s", "ours_candidates_per_s", "1f"),
            ("naive cand/s", "naive_candidates_per_s", "1f"),
            ("speed-up", "speedup", "1f"),
            ("tokens / floor", "ours_tokens_over_floor", "3f"),
            ("peak RSS MB", "peak_rss_mb", "0f"),
        ],
    ),
    "quantization": (
        "scoring-speed/quantization.json",
        "results",
        [
            ("precision", "precision", "s"),
            ("s/user", "seconds_per_user", "3f"),
            ("HR@1", "hit@1", "4f"),
            ("NDCG@5", "ndcg@5", "4f"),
            ("top-1 agreement with fp32", "top1_agreement_with_fp32", "2f"),
        ],
    ),
    "baseline-epoch-cost": (
        "baselines/baseline_epoch_cost.json",
        "rows",
        [
            ("settings changed", "variant", "s"),
            ("anomaly mode", "detect_anomaly", "s"),
            ("max length", "max_item_list_length", "d"),
            ("prefixes/s", "prefixes_per_second", "0f"),
            ("projected epoch s", "projected_epoch_seconds", "0f"),
        ],
    ),
    "training-speed": ("training-speed/training_speed.json", "results", TRAINING_SPEED),
    "training-speed-negative-positions": (
        "training-speed/training_speed-negative-positions.json",
        "results",
        TRAINING_SPEED,
    ),
    "signal-tokens": ("training-speed/signal_tokens.json", "results", SIGNAL_TOKENS),
    "signal-tokens-categories": (
        "training-speed/signal_tokens-categories.json",
        "results",
        SIGNAL_TOKENS,
    ),
}


def _at(node, path):
    if callable(path):  # a column computed from its row
        return path(node)
    for part in path.split("/") if path else []:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _format(value, fmt):
    if value is None:
        return "-"
    if fmt == "s":
        return str(value)
    if fmt == "d":
        return f"{int(value):,}"
    return f"{float(value):,.{fmt[:-1]}f}"


def _result_path(file):
    """(path on disk, name as the tables show it) of a table's result file, named
    ``<experiment>/<file>`` under that experiment's ``results/`` folder."""
    experiment, name = file.split("/", 1)
    shown = f"benchmarks/experiments/{experiment}/results/{name}"
    return os.path.join(ROOT, shown), shown


def _source(name, result):
    run = result.get("run", {})
    dirty = " (with uncommitted changes)" if run.get("uncommitted_changes") else ""
    return (
        f"From `{_result_path(name)[1]}`, commit `{run.get('commit', 'unknown')[:10]}`{dirty}, "
        f"command `{run.get('command', '?').strip()}`:"
    )


def _rows(result, spec):
    if isinstance(spec, list):
        return [dict(_at(result, path) or {}, _key=label) for label, path in spec]
    node = _at(result, spec)
    if isinstance(node, dict):
        return [dict(value, _key=key if key != "None" else "(none)") for key, value in node.items()]
    return node or []


def _load(file):
    """(result, None) of a table's file, or (None, the line saying it is not measured yet)."""
    path, shown = _result_path(file)
    if not os.path.isfile(path):
        return None, [f"(`{shown}` is not measured yet.)"]
    with open(path, encoding="utf-8") as f:
        return json.load(f), None


def _table(file, result, rows, columns):
    lines = [_source(file, result), ""]
    lines.append("| " + " | ".join(header for header, _, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in _rows(result, rows):
        cells = [_format(_at(row, path), fmt) for _, path, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_table(name):
    """Lines of the named table, its provenance line first: a name of TABLES (the tables whose
    rows or columns are not a result file's own), or a result file as
    ``<experiment>/<file>.json`` (a paired comparison as its table, a main job's record as
    its one row, a bench run as its rows' metrics and costs)."""
    if name not in TABLES and not re.fullmatch(r"[\w-]+/[\w.@-]+\.json", name):
        raise SystemExit(
            f"<!-- TABLE {name} -->: no such table; name one of {', '.join(TABLES)}, or a "
            "result file as <experiment>/<file>.json"
        )
    file, rows, columns = TABLES.get(name, (name, "results", None))
    result, missing = _load(file)
    if missing:
        return missing
    if columns is None:  # a result file named in the block
        if "references" in result:
            return render_comparison(file)
        if "wall_seconds" in result.get("result", {}):
            return _table(file, result, *MAIN_JOB_RUN)
        signals = any("training_signals" in row for row in result["results"])
        columns = BENCH_SIGNALS if signals else BENCH_TIMED
    return _table(file, result, rows, columns)


def _cell(entry):
    from recbole_instructrec.bench.comparison import difference_cell

    return difference_cell(entry, digits=3)


def _verdict(against):
    hit, ndcg = (against[m]["verdict"] for m in ("hit@1", "ndcg@5"))
    return hit if hit == ndcg else f"HR@1: {hit}; NDCG@5: {ndcg}"


def render_comparison(name, title=None, default_row=None):
    """A paired comparison (``instructrec compare`` / bench) file as a table; ``default_row``
    is marked as the default."""
    result, missing = _load(name)
    if missing:
        return missing
    shown = _result_path(name)[1]
    references = result["references"]
    first = next(iter(references), "reference")
    best = references.get("best baseline (by validation)")
    head = (
        f"**{title}** ({result['n_users']} test users, the same stored candidates for every row; "
    )
    lines = [
        (head if title else f"({result['n_users']} test users; ")
        + f"`{shown}`, commit `{result['run']['commit'][:10]}`, command in "
        "the file):",
        "",
        f"| model | training | HR@1 | NDCG@5 | Δ HR@1 vs {first} [95 % CI] | Δ NDCG@5 vs "
        f"{first} [95 % CI] | vs {best or 'best baseline'} |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        versus = row["against"].get(first)
        versus_best = row["against"].get("best baseline (by validation)")
        cells = [
            f"**{row['model']}** (default)" if row["model"] == default_row else row["model"],
            row["training"],
            f"{row['metrics']['hit@1']:.4f}",
            f"{row['metrics']['ndcg@5']:.4f}",
            _cell(versus["hit@1"]) if versus else "reference",
            _cell(versus["ndcg@5"]) if versus else "reference",
            _verdict(versus_best) if versus_best else "reference",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_headline():
    lines = [START, ""]
    for name, title in HEADLINES:
        lines += render_comparison(name, title, default_row=DEFAULT_ROW) + [""]
    return "\n".join(lines + [END])


def render_readme(text):
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block to fill.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + render_headline() + tail


def render_blocks(text):
    return BLOCK.sub(
        lambda m: m.group(1) + "\n".join(render_table(m.group(2))) + "\n" + m.group(4), text
    )


def _experiment_names():
    names = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(EXPERIMENT_READMES))
    first = [name for name in EXPERIMENTS_FIRST if name in names]
    return first + [name for name in names if name not in first]


def experiment_summary(name):
    """(title, question, answer) of an experiment, from its README: the first line, and the
    paragraphs that open with **Question.** and **Answer.**."""
    path = os.path.join(EXPERIMENTS, name, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    title = paragraphs[0].lstrip("# ").strip()
    found = {}
    for label in ("Question", "Answer"):
        opening = f"**{label}.** "
        found[label] = next((p[len(opening) :] for p in paragraphs if p.startswith(opening)), None)
        if found[label] is None:
            raise SystemExit(f"{os.path.relpath(path, ROOT)}: no paragraph opens with {opening!r}")
    return title, found["Question"], found["Answer"]


# A Markdown link to a relative path: [text](target), where target is neither a URL (a scheme)
# nor an anchor of the same page.
RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")


def relinked(text, experiment_link):
    """``text`` from an experiment's README with each relative link rewritten to point from the
    page that copies it: ``experiment_link`` is the experiment's folder as that page reaches it."""

    def rewrite(match):
        target, _, anchor = match.group(1).partition("#")
        path = os.path.normpath(experiment_link + target).replace(os.sep, "/")
        return f"]({path}{'#' + anchor if anchor else ''})"

    return RELATIVE_LINK.sub(rewrite, text)


def render_index(link_prefix, detailed):
    """The experiments, each with its question (and, ``detailed``, its answer), linked. The links
    inside a question or answer point from the experiment's folder; they are rewritten to point
    from the index's page."""
    lines = []
    if not detailed:
        lines += ["| experiment | question |", "|---|---|"]
    for name in _experiment_names():
        title, question, answer = experiment_summary(name)
        folder = f"{link_prefix}{name}/"
        question, answer = relinked(question, folder), relinked(answer, folder)
        link = f"{folder}README.md"
        if detailed:
            lines += [f"### [{title}]({link})", "", f"**Question.** {question}", ""]
            lines += [f"**Answer.** {answer}", ""]
        else:
            lines.append(f"| [{name}]({link}) | {question.replace('|', '/')} |")
    return lines


def render_indexes(text, detailed, link_prefix):
    """The index block: the experiments' questions and answers (docs/results.md), or a table of
    their questions (the experiments' own README)."""
    lines = render_index(link_prefix, detailed)
    return INDEX_BLOCK.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(3), text)


def main(argv=None, readme=None, results_doc=None, experiments_index=None, experiment_readmes=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    # (path, its own renderer, its index: None, or (detailed, the links' prefix))
    documents = [
        (readme or README, render_readme, None),
        (results_doc or RESULTS_DOC, None, (True, "../benchmarks/experiments/")),
        (experiments_index or EXPERIMENTS_INDEX, None, (False, "")),
    ]
    readmes = experiment_readmes or sorted(glob.glob(EXPERIMENT_READMES))
    documents += [(p, None, None) for p in readmes]
    for path, render, index in documents:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = render_blocks(render(text) if render else text)
        if index:  # only the two index pages read every experiment's README
            new = render_indexes(new, *index)
        if new == text:
            continue
        if args.check:
            stale.append(os.path.relpath(path, ROOT))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
    if stale:
        print(f"{', '.join(stale)} differ from their result files: run python benchmarks/render.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
