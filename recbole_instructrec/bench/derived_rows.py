"""Rows a benchmark run adds without training a model: a row stored by an earlier run on the
same candidates (``--stored-row``), a row evaluated from the checkpoint an earlier run saved
(``--trained-row``), the category rule of each instruction task, and the popularity rule."""

import json
import os

import numpy as np

from recbole_instructrec.bench import instruction_tasks as tasks_lib
from recbole_instructrec.bench.evaluation import cold_test_users, rank_summary
from recbole_instructrec.bench.report import local_path
from recbole_instructrec.bench.score_files import (
    read_score_file,
    score_file_of_result,
    write_score_file,
)
from recbole_instructrec.scoring.ranking import positive_ranks


def stored_row(name, result_file, digest):
    """Row ``name`` of an earlier run's ``result_file``, checked to be on these candidates."""
    with open(result_file, encoding="utf-8") as f:
        rows = [r for r in json.load(f)["results"] if r["model"] == name]
    if not rows:
        raise ValueError(f"--stored-row {name}={result_file}: that file has no row {name}.")
    row = dict(rows[0])
    if row.get("candidates_sha256") != digest:
        raise ValueError(
            f"--stored-row {name}={result_file}: its candidates (sha256 "
            f"{str(row.get('candidates_sha256'))[:12]}) are not this run's ({str(digest)[:12]}); "
            "a stored row must be scored on the same candidates."
        )
    row["scores_file"] = score_file_of_result(result_file, row["scores_file"])
    row["stored_from"] = os.path.relpath(result_file)
    if row.get("checkpoint"):
        row["checkpoint"] = local_path(row["checkpoint"])
    return row


def trained_checkpoint(name, result_file):
    """The checkpoint that row ``name`` of an earlier run's ``result_file`` saved, to evaluate
    it again (under another protocol, say) without training it."""
    with open(result_file, encoding="utf-8") as f:
        rows = [r for r in json.load(f)["results"] if r["model"] == name]
    if not rows:
        raise ValueError(f"--trained-row {name}={result_file}: that file has no row {name}.")
    path = rows[0].get("checkpoint")
    path = path and local_path(path)
    if not path or not os.path.isfile(path):
        raise ValueError(
            f"--trained-row {name}={result_file}: its checkpoint {path!r} is not on this machine "
            "(checkpoints stay under the run's results/tmp/, uncommitted); run that row's "
            "command here first, or train the row instead."
        )
    return path


POPULARITY_ROW = "PopularityRule"


def popularity_scores(tokens, train_counts, seed):
    """Score records of the popularity rule: each stored candidate scored by its number of
    training interactions, ties broken by a seeded draw (a fraction of one interaction, so a
    tie-break never overturns a count). It reads no history and no request: the simplest
    baseline a recommender must beat."""
    rng = np.random.default_rng(seed)
    records = []
    for user, items in tokens.items():
        tie_break = rng.random(len(items)) * 0.5
        scores = [train_counts.get(t, 0) + float(b) for t, b in zip(items, tie_break)]
        records.append({"user": user, "items": items, "scores": [round(x, 6) for x in scores]})
    return records


def popularity_row(tokens, test_dataset, train_counts, digest, path, ks, seed):
    """The popularity rule's row on the stored candidates ``tokens`` (``{user: [items]}`` in
    ``test_dataset``'s row order, the positive first), its scores written to ``path``."""
    if tokens is None:
        raise ValueError(
            f"{POPULARITY_ROW} ranks the stored candidates of a sampled protocol; run it with "
            "--protocol uni9 (or uni99, pop99), not full."
        )
    return _rule_row(
        POPULARITY_ROW,
        {"rule": "training interactions of each candidate, ties by a seeded draw"},
        popularity_scores(tokens, train_counts, seed),
        path,
        ks,
        cold_test_users(test_dataset, train_counts),
        digest,
    )


def _rule_row(name, settings, records, path, ks, cold, digest):
    """The record of a row that a rule scored (no model, no training): ``records`` written to
    ``path`` and ranked."""
    write_score_file(path, records)
    ranks = positive_ranks(np.array([r["scores"] for r in records]), name)
    return {
        "model": name,
        "recbole_model": None,
        "settings": settings,
        "convergence": None,
        "validation_grid": None,
        "checkpoint": None,
        "fusion_weight": None,
        "scores_file": path,
        **rank_summary(ranks, ks, cold),
        "candidates_sha256": digest,
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
        "trainable_parameters": 0,
        "training_signals": None,
    }


def add_rule_rows(done, dataset, test_dataset, out_dir, stamp, ds_name, ks, cold):
    """The category rule's row of each task on ``dataset``, from its SASRec row's scores."""
    categories = tasks_lib.categories_by_token(test_dataset.dataset_path, test_dataset.dataset_name)
    for task, rows in done.items():
        sasrec = next(
            (
                r
                for r in rows
                if r["model"] == "SASRec" and r["dataset"] == dataset and r.get("scores_file")
            ),
            None,
        )
        if sasrec is None or categories is None:
            continue
        reads_words = tasks_lib.TASKS[task][2]
        rule = tasks_lib.rule_scores_from_records(
            read_score_file(sasrec["scores_file"]), categories, reads_words
        )
        path = os.path.join(
            out_dir, "scores", stamp, f"{ds_name}-{tasks_lib.RULE_ROW}-{task}.jsonl.gz"
        )
        settings = {
            "rule": (
                "Jaccard overlap of categories with the request's words, ties by SASRec"
                if reads_words
                else "no words to read: SASRec's order"
            ),
            "tie_break_scores": sasrec["scores_file"],
        }
        row = _rule_row(
            tasks_lib.RULE_ROW, settings, rule, path, ks, cold, sasrec["candidates_sha256"]
        )
        rows.append(
            {
                **{k: sasrec[k] for k in ("dataset", "dataset_loaded", "max_users", "protocol")},
                "candidates_file": sasrec.get("candidates_file"),
                "task": task,
                **row,
            }
        )
