"""Stored negatives the user interacted with, and whether they move the headline comparisons.

    python benchmarks/candidate_leaks.py [--data-path ../shared/datasets]
        [--candidates <candidates-*.jsonl> ...] [--comparison <compare json> ...]
        [--tag candidate-leaks]

A draw that reads each user's "seen" set from the prediction targets alone, after RecBole's
``data_preparation`` has rewritten a sequential dataset's interactions to one row per target,
can draw a user's first interaction as one of its negatives; the experiments scored before the
draw read the histories too keep such files (each experiment's README says which draw it used).
This script measures a candidate file and the effect on the comparisons scored on it:

1. For every candidate file (by default each experiment's stored
   ``benchmarks/experiments/*/results/candidates-*.jsonl``) whose raw atomic ``.inter`` file it
   finds (ml-100k from RecBole's wheel, also for the u150 sample and the shuffled-titles control,
   which copies ml-100k's interactions unchanged; amazon-games, whose 2000-user sample keeps
   every interaction of each sampled user, from ``--data-path``): the candidate rows with a
   negative that the user interacted with at any time, the users, and where the item is in the
   user's history (the bug predicts: its first interaction).
2. For each ``--comparison`` (an ``instructrec compare`` result): the comparison again, from its
   own command's rows, with all users (which must reproduce the stored file) and without the
   users whose scored candidates hold a leaked negative; per row and reference, the metric, the
   paired difference with its 95 % interval, and whether the verdict changed.
"""

import argparse
import csv
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recbole_instructrec.bench import comparison  # noqa: E402
from recbole_instructrec.bench.candidate_leaks import (  # noqa: E402
    leaked_negatives,
    read_histories,
)
from recbole_instructrec.bench.candidates import read_candidate_file  # noqa: E402
from recbole_instructrec.bench.user_sample import dataset_folder  # noqa: E402

# Datasets written from another's interactions, unchanged (benchmarks/shuffled_titles.py).
SAME_INTERACTIONS = {"ml-100k-shuffled-titles": "ml-100k"}
METRICS = ("hit@1", "ndcg@5")
COMPARE_OPTIONS = ("results", "rows", "title", "reference", "out", "tag")


def raw_inter_file(candidate_file, data_path):
    """The raw ``.inter`` that holds every interaction of the users of ``candidate_file``
    (``candidates-<dataset>[-u<N>-s<seed>]-<protocol>.jsonl``, as the runner names them)."""
    stem = os.path.basename(candidate_file)[len("candidates-") : -len(".jsonl")]
    dataset = re.sub(r"-u\d+-s\d+$", "", stem.rsplit("-", 1)[0])  # a sample keeps whole users
    dataset = SAME_INTERACTIONS.get(dataset, dataset)
    return os.path.join(dataset_folder(data_path, dataset), f"{dataset}.inter")


def leak_report(candidates, histories):
    """Rows and users with a leaked negative, each leak with its place in the user's history."""
    leaks = leaked_negatives(candidates, histories)
    return {
        "rows": len(candidates),
        "rows_with_a_leaked_negative": len({u for u, _ in leaks}),
        "leaked_negatives": len(leaks),
        "users": sorted({u for u, _ in leaks}, key=_token_order),
        "leaks": [
            {
                "user": u,
                "item": i,
                "position_in_history": histories[u].index(i),
                "history_length": len(histories[u]),
            }
            for u, i in leaks
        ],
    }


def _token_order(token):
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def check_candidate_file(path, data_path):
    inter = raw_inter_file(path, data_path)
    candidates = read_candidate_file(path)
    report = leak_report(candidates, read_histories(inter, candidates))
    _mark_float32_ties(report["leaks"], inter)
    return {"candidate_file": os.path.relpath(path, ROOT), "inter_file": inter, **report}


def _mark_float32_ties(leaks, inter):
    """For a leak that is not the user's first interaction: whether its timestamp and the
    first's are equal as float32 (RecBole's float fields), so that RecBole may order it first."""
    later = [leak for leak in leaks if leak["position_in_history"] > 0]
    if not later:
        return
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(inter, sep="\t", dtype=str, quoting=csv.QUOTE_NONE)
    column = {c.split(":")[0]: c for c in frame.columns}
    for leak in later:
        times = frame[frame[column["user_id"]] == leak["user"]]
        times = times.set_index(column["item_id"])[column["timestamp"]].astype(float)
        first, own = np.float32(times.min()), np.float32(times[leak["item"]].min())
        leak["ties_the_first_as_float32"] = bool(first == own)


def compare_command(command):
    """The options of an ``instructrec compare`` command line as stored in its result (joined
    with spaces, so a row name with a space is cut at the next option, not at the space)."""
    parts = re.split(r"(?:^|\s)--(" + "|".join(COMPARE_OPTIONS) + r")(?=\s|$)", command)
    options = {"results": []}
    for name, value in zip(parts[1::2], parts[2::2]):
        value = value.strip()
        if name == "results":
            options["results"].append(value)
        else:
            options[name] = value
    return options


def sensitivity(result_file, data_path):
    """The comparison of ``result_file`` with all users and without those whose scored
    candidates hold a leaked negative."""
    stored = comparison_json(result_file)
    options = compare_command(stored["run"]["command"])
    names = [n for n in options.get("rows", "").split(",") if n] or None
    rows = comparison.load_rows(options["results"], names)
    reference = options.get("reference")
    if reference:  # as instructrec compare names it
        reference = rows[names.index(reference)]["model"] if names else reference
    # The candidates the rows were scored on (compare_rows checks that every row has them).
    users, scored, _ = comparison.read_scores(rows[0]["scores_file"], rows[0]["model"])
    candidates = dict(zip(users, scored))
    candidate_files = sorted({r.get("candidates_file") for r in rows if r.get("candidates_file")})
    datasets = {r["dataset"] for r in rows}
    if len(datasets) != 1:
        raise ValueError(f"{result_file}: rows of several datasets {sorted(datasets)}")
    (dataset,) = datasets
    dataset = SAME_INTERACTIONS.get(dataset, dataset)
    inter = os.path.join(dataset_folder(data_path, dataset), f"{dataset}.inter")
    leaks = leak_report(candidates, read_histories(inter, candidates))
    same_as_file = [read_candidate_file(f) == candidates for f in candidate_files]
    everyone = comparison.compare_rows(rows, reference=reference)
    without = comparison.compare_rows(rows, reference=reference, exclude_users=leaks["users"])
    reproduced = _stored_view(everyone) == _stored_view(stored)
    table = []
    for full, reduced in zip(everyone["rows"], without["rows"]):
        entry = {
            "model": full["model"],
            "metrics": {m: full["metrics"][m] for m in METRICS},
            "metrics_without_leaking_users": {m: reduced["metrics"][m] for m in METRICS},
            "against": {},
        }
        for role, against in full["against"].items():
            other = reduced["against"][role]
            entry["against"][role] = {
                "model": against["model"],
                **{
                    m: {
                        "all_users": _difference(against[m]),
                        "without_leaking_users": _difference(other[m]),
                        "verdict_changed": against[m]["verdict"] != other[m]["verdict"],
                    }
                    for m in METRICS
                },
            }
        table.append(entry)
    return {
        "comparison": os.path.relpath(result_file, ROOT),
        "command": stored["run"]["command"],
        "inter_file": inter,
        "candidate_files": candidate_files,
        "scored_candidates_equal_candidate_file": same_as_file,
        "all_users_reproduce_the_stored_comparison": reproduced,
        "n_users": everyone["n_users"],
        "n_users_without_leaking_users": without["n_users"],
        "leaking_users": leaks["users"],
        "leaks": leaks["leaks"],
        "references": everyone["references"],
        "rows": table,
        "any_verdict_changed": any(
            a[m]["verdict_changed"] for r in table for a in r["against"].values() for m in METRICS
        ),
    }


def comparison_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _stored_view(result):
    """What a comparison concludes (as JSON reads it back): per row, metrics and differences."""
    rows = json.loads(json.dumps(result["rows"]))
    return [(r["model"], r["metrics"], r["ci95"], r["against"]) for r in rows]


def _difference(entry):
    return {k: entry[k] for k in ("difference", "ci95", "verdict", "p")}


def _cell(entry):
    low, high = entry["ci95"]
    return f"{entry['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"


def markdown(files, checks):
    lines = [
        "Stored candidate rows with a negative that the user interacted with (at any time, in "
        "the raw `.inter` file). `first` counts the leaked items that are the user's first "
        "interaction in time order (ties kept in file order): what the bug in "
        "`draw_candidates` predicts.",
        "",
        "A leak at a later position marked *tie* has the first interaction's timestamp once "
        "rounded to float32, as RecBole stores it, so RecBole may have ordered it first.",
        "",
        "| candidate file | raw interactions | rows | rows with a leak | leaked negatives | "
        "first | user: item (position in history / length) |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in files:
        first = sum(1 for leak in f["leaks"] if leak["position_in_history"] == 0)
        leaks = ", ".join(
            f"{leak['user']}: {leak['item']} ({leak['position_in_history']}/"
            f"{leak['history_length']}{', tie' if leak.get('ties_the_first_as_float32') else ''})"
            for leak in f["leaks"]
        )
        lines.append(
            f"| `{os.path.basename(f['candidate_file'])}` | `{_short(f['inter_file'])}` | "
            f"{f['rows']} | {f['rows_with_a_leaked_negative']} | {f['leaked_negatives']} | "
            f"{first} | {leaks or 'none'} |"
        )
    for check in checks:
        reproduced = (
            "they reproduce the stored file exactly"
            if check["all_users_reproduce_the_stored_comparison"]
            else "**they do not reproduce the stored file**"
        )
        lines += [
            "",
            f"## `{check['comparison']}` without the leaking users",
            "",
            f"Rows of its own command, recomputed with all {check['n_users']} users ({reproduced})"
            f" and without the {len(check['leaking_users'])} users whose scored candidates hold "
            f"a leaked negative ({', '.join(check['leaking_users']) or 'none'}): "
            f"{check['n_users_without_leaking_users']} users. Any verdict changed: "
            f"**{'yes' if check['any_verdict_changed'] else 'no'}**.",
        ]
        shown = set()
        for role, reference in check["references"].items():
            if reference in shown:
                lines += ["", f"The {role} is {reference}: the table above."]
                continue
            shown.add(reference)
            lines += [
                "",
                f"Against {role}: **{reference}**. Δ is the paired difference [95 % bootstrap "
                "interval]; all → without leaking users.",
                "",
                "| model | hit@1 | Δ hit@1 all | Δ hit@1 without | ndcg@5 | Δ ndcg@5 all | "
                "Δ ndcg@5 without | verdict without | changed |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for row in check["rows"]:
                cells = [row["model"]]
                against = row["against"].get(role)
                for m in METRICS:
                    cells.append(
                        f"{row['metrics'][m]:.4f} → {row['metrics_without_leaking_users'][m]:.4f}"
                    )
                    if against is None:
                        cells += ["reference", ""]
                    else:
                        cells += [
                            _cell(against[m]["all_users"]),
                            _cell(against[m]["without_leaking_users"]),
                        ]
                if against is None:
                    cells += ["", ""]
                else:
                    verdicts = [against[m]["without_leaking_users"]["verdict"] for m in METRICS]
                    changed = [m for m in METRICS if against[m]["verdict_changed"]]
                    cells += [
                        " / ".join(f"{v} on {m}" for v, m in zip(verdicts, METRICS)),
                        ("**yes** (" + ", ".join(changed) + ")") if changed else "no",
                    ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short(path):
    path = os.path.abspath(path)
    site = os.path.join("site-packages", "")
    return path.split(site, 1)[1] if site in path else os.path.relpath(path, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-path", default="../shared/datasets", help="relative to the root")
    parser.add_argument(
        "--candidates",
        action="append",
        default=None,
        help="candidate files (default: every experiment's results/candidates-*.jsonl)",
    )
    parser.add_argument(
        "--comparison", action="append", default=[], help="compare results to recompute"
    )
    parser.add_argument(
        "--files-only", action="store_true", help="check the candidate files, no comparison"
    )
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "candidate-draw", "results"),
    )
    parser.add_argument("--tag", default="candidate-leaks")
    args = parser.parse_args()
    command = " ".join(["python benchmarks/candidate_leaks.py", *sys.argv[1:]])
    out = os.path.abspath(args.out)
    os.chdir(ROOT)  # result files name their score files relative to the repository root
    candidate_files = args.candidates or sorted(
        glob.glob(os.path.join("benchmarks", "experiments", "*", "results", "candidates-*.jsonl"))
    )
    files = []
    for path in candidate_files:
        files.append(check_candidate_file(path, args.data_path))
        f = files[-1]
        print(f"{f['candidate_file']}: {f['rows_with_a_leaked_negative']} rows", flush=True)
    checks = []
    for path in [] if args.files_only else args.comparison:
        checks.append(sensitivity(path, args.data_path))
        print(f"{path}: any verdict changed: {checks[-1]['any_verdict_changed']}", flush=True)

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    info = run_info(command)
    lines = provenance_lines(info) + markdown(files, checks)
    save_report(
        out, args.tag, {"run": info, "candidate_files": files, "comparisons": checks}, lines
    )


if __name__ == "__main__":
    main()
