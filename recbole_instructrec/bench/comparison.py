"""Rows of one or several benchmark runs, compared user by user on the same stored candidates.

A row is a benchmark record (``bench-*.json``) and the per-user score file it wrote. Every row
of a comparison must hold the same users with the same candidates in the same order (the files
are checked, not trusted). Each row is ranked by the one rule of :mod:`..scoring.ranking`, and
set against SASRec and against the best baseline, the RecBole baseline with the best
*validation* score (never chosen on test), with the paired statistics of :mod:`.paired`.
"""

import json
import os

import numpy as np

from recbole_instructrec.bench import paired
from recbole_instructrec.bench.score_files import (
    read_score_file,
    score_file_of_result,
    score_file_path,
)
from recbole_instructrec.scoring.ranking import metric_of_ranks, positive_ranks

HEADLINE = (("hit", 1), ("ndcg", 5))
REFERENCE = "SASRec"


class ComparisonError(ValueError):
    """Rows that cannot be compared; the message says which and why."""


def load_rows(result_files, names=None):
    """Records named ``names`` (all when None) from bench JSON files, in the order asked; a
    name found in several files is taken from the first file that has it, and ``NAME@K`` takes
    it from the K-th file (1-based), named ``NAME (<file>)`` so two runs of a row can meet."""
    payloads = []
    for path in result_files:
        with open(path, encoding="utf-8") as f:
            payloads.append((os.path.relpath(path), json.load(f)))
    found = {}
    for index, (path, payload) in enumerate(payloads, 1):
        for record in payload["results"]:
            entry = {
                **record,
                "scores_file": score_file_of_result(path, record.get("scores_file")),
                "result_file": path,
                "run": payload["run"],
            }
            found.setdefault(record["model"], entry)
            stem = os.path.splitext(os.path.basename(path))[0]
            found[f"{record['model']}@{index}"] = {**entry, "model": f"{record['model']} ({stem})"}
    missing = [n for n in names or () if n not in found]
    if missing:
        rows = sorted(n for n in found if "@" not in n)
        raise ComparisonError(
            f"rows {missing} are in none of {list(result_files)}; the rows there are {rows} "
            "(NAME@K takes a row from the K-th file)"
        )
    return [found[n] for n in names] if names else [v for k, v in found.items() if "@" not in k]


def read_scores(path, model):
    """(users, candidates, scores) of a score file, sorted by user."""
    if score_file_path(path) is None:
        raise ComparisonError(
            f"row {model}: its score file {path!r} does not exist; compare rows of a sampled "
            "protocol (uni9, uni99, pop99) from the folder where the benchmark wrote them."
        )
    records = sorted(read_score_file(path), key=lambda r: r["user"])
    users = [r["user"] for r in records]
    return users, [r["items"] for r in records], np.array([r["scores"] for r in records])


def compare_rows(rows, seed=0, reference=None, exclude_users=None):
    """Per row: its metrics with their own 95 % intervals, and the paired comparison with
    SASRec and with the best baseline (or with the row named ``reference`` only). Raises
    :class:`ComparisonError` when the rows were not scored on the same users and candidates.
    Users (tokens) in ``exclude_users`` are left out of every row, for a sensitivity check; the
    result then lists, as ``excluded_users``, those it left out."""
    per_user, tied, reference_candidates = {}, {}, None
    exclude_users = set(exclude_users or ())
    excluded = set()
    for row in rows:
        users, candidates, scores = read_scores(row["scores_file"], row["model"])
        if exclude_users:
            keep = [i for i, u in enumerate(users) if u not in exclude_users]
            excluded |= set(users) - {users[i] for i in keep}
            users, candidates = [users[i] for i in keep], [candidates[i] for i in keep]
            scores = scores[keep]
        if reference_candidates is None:
            reference_candidates = (users, candidates, row["model"])
        elif (users, candidates) != reference_candidates[:2]:
            raise ComparisonError(
                f"rows {reference_candidates[2]} and {row['model']} were not scored on the same "
                "users and candidates, so they cannot be compared user by user."
            )
        ranks = positive_ranks(scores, row["model"], users)
        per_user[row["model"]] = {f"{n}@{k}": metric_of_ranks(ranks, n, k) for n, k in HEADLINE}
        # Where RecBole's topk could rank differently: its tie-break is arbitrary, ours is not.
        tied[row["model"]] = int((scores[:, 1:] == scores[:, :1]).any(axis=1).sum())
    references = {"the reference row": reference} if reference else _references(rows)
    results = []
    for row in rows:
        values = per_user[row["model"]]
        entry = {
            "model": row["model"],
            "result_file": row.get("result_file"),
            "scores_file": row["scores_file"],
            "candidates_sha256": row.get("candidates_sha256"),
            "training": training_summary(row),
            "metrics": {m: float(v.mean()) for m, v in values.items()},
            "ci95": {m: paired.bootstrap_interval(v, seed) for m, v in values.items()},
            "users_with_a_tied_positive": tied[row["model"]],
            "against": {},
        }
        for role, reference in references.items():
            if reference != row["model"]:
                entry["against"][role] = {
                    "model": reference,
                    **paired.compare(values, per_user[reference], seed),
                }
        results.append(entry)
    result = {"n_users": len(reference_candidates[0]), "references": references, "rows": results}
    if exclude_users:
        result["excluded_users"] = sorted(excluded)
    return result


def _references(rows):
    baselines = [r for r in rows if r.get("recbole_model", r["model"]) != "InstructRec"]
    validated = [r for r in baselines if (r.get("convergence") or {}).get("best_valid_score")]
    references = {}
    if any(r["model"] == REFERENCE for r in rows):
        references["SASRec"] = REFERENCE
    if validated:
        best = max(validated, key=lambda r: r["convergence"]["best_valid_score"])
        references["best baseline (by validation)"] = best["model"]
    return references


def training_summary(row):
    """How a row was trained, in a few words: a baseline's epochs and why it stopped."""
    convergence = row.get("convergence")
    if convergence:
        text = (
            f"{convergence['stop_reason']}, best epoch {convergence['best_epoch']} "
            f"of {convergence['epochs_run']}"
        )
        if convergence["stop_reason"] == "early stopping":
            return text
        if row.get("recbole_model", row.get("model")) == "InstructRec":
            # a training budget, not a baseline that should have run to convergence
            epochs = convergence["epochs_run"]
            return (
                f"a budget of {epochs} epoch{'s' * (epochs != 1)}, "
                f"best epoch {convergence['best_epoch']}"
            )
        # How far it was from stopping by itself: RecBole stops after stopping_step + 1
        # evaluations without gain.
        since_best = convergence["epochs_run"] - 1 - convergence["best_epoch"]
        return f"{text}, {since_best} without gain (not converged)"
    if row.get("recbole_model", row["model"]) == "InstructRec":
        if row.get("training_signals") == 0:
            return "zero-shot: no training"
        return "InstructRec trainer, no validation record"
    if row.get("recbole_model", row["model"]) is None and "rule" in row.get("settings", {}):
        return "a rule: no training"
    return "no convergence record (trained before it was kept)"


def markdown_lines(comparison, rows_note=""):
    """The comparison as Markdown: one table per reference row."""
    lines, shown = [], set()
    for role, reference in comparison["references"].items():
        if reference in shown:  # the best baseline is SASRec itself: one table says it all
            lines += ["", f"The {role} is {reference}: the table above."]
            continue
        shown.add(reference)
        lines += [
            "",
            f"Against {role}: **{reference}**. Paired over {comparison['n_users']} test users; "
            "difference [95 % bootstrap interval], p of McNemar's exact test (hit@1) and of "
            "the Wilcoxon signed-rank test (ndcg@5). **Bold**: the interval excludes zero.",
            "",
            "| model | training | hit@1 | ndcg@5 | Δ hit@1 | p | Δ ndcg@5 | p | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in comparison["rows"]:
            cells = [row["model"], row["training"]]
            cells += [f"{row['metrics'][m]:.4f}" for m in ("hit@1", "ndcg@5")]
            against = row["against"].get(role)
            if against is None:
                cells += ["reference", "", "", "", ""]
            else:
                for metric in ("hit@1", "ndcg@5"):
                    cells += [difference_cell(against[metric]), _p(against[metric]["p"])]
                cells.append(_verdict(against))
            lines.append("| " + " | ".join(cells) + " |")
    if rows_note:
        lines += ["", rows_note]
    return lines


def difference_cell(entry, digits=4):
    """A paired difference and its 95 % interval, bold when the interval excludes zero."""
    low, high = entry["ci95"]
    text = f"{entry['difference']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
    return f"**{text}**" if entry["verdict"] != "no measurable difference" else text


def _p(p):
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _verdict(against):
    verdicts = {against[m]["verdict"] for m in ("hit@1", "ndcg@5")}
    if verdicts == {"no measurable difference"}:
        return "no measurable difference"
    return " / ".join(f"{against[m]['verdict']} on {m}" for m in ("hit@1", "ndcg@5"))
