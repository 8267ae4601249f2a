"""Cold-item slice and popularity buckets of finished benchmarks, from their stored per-user
scores (nothing re-run).

    python benchmarks/cold_items.py <results>/scores/<tag> --dataset ml-100k
    python benchmarks/cold_items.py <results>/scores/<tag> \\
        --dataset amazon-games-u2000-s2020 --data-path <results>/tmp

A test user is in the slice when their target item has at most 5 training interactions
(leave-one-out: all but each user's last two interactions are training data). Several score
folders of one dataset may be given (``--tag`` names the report); their files must hold the same
users and candidates. A second table splits all test users by their target's training count,
so that 16 cold users (ml-100k) are not the only view of where text beats IDs. Newer
``instructrec bench`` runs report the cold slice themselves.
"""

import argparse
import os
import sys
from operator import itemgetter

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recbole_instructrec.bench.cold_items import (  # noqa: E402
    COLD_MAX_TRAIN_INTERACTIONS,
    cold_mask,
    popularity_buckets,
)
from recbole_instructrec.bench.report import run_info, save_report  # noqa: E402
from recbole_instructrec.bench.score_files import read_score_file, score_files_in  # noqa: E402
from recbole_instructrec.bench.user_sample import dataset_folder  # noqa: E402
from recbole_instructrec.data.training_counts import counts_from_atomic  # noqa: E402
from recbole_instructrec.scoring.ranking import positive_ranks, ranking_metrics  # noqa: E402


def _score_files(folders, dataset):
    """(row name, records) per score file; a model met again with other scores is named
    ``model (folder)``, one met again with the same scores is skipped."""
    seen, candidates = {}, None
    for folder in folders:
        tag = os.path.basename(os.path.normpath(folder))
        for name, path in score_files_in(folder):
            records = sorted(read_score_file(path), key=itemgetter("user"))
            these = [(r["user"], r["items"]) for r in records]
            if candidates is None:
                candidates = these
            elif these != candidates:
                raise SystemExit(f"{path} does not hold the same users and candidates as the rest.")
            model = name.replace(dataset + "-", "", 1)
            scores = np.array([r["scores"] for r in records])
            same_model = [s for name, s in seen.items() if name.split(" (")[0] == model]
            # Scores are stored to 6 decimals: a re-run of the same checkpoint differs in the last.
            if any(np.allclose(s, scores, atol=1e-5) for s in same_model):
                continue
            seen[f"{model} ({tag})" if same_model else model] = scores
    return seen, [items[0] for _, items in candidates]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores_dirs", nargs="+")
    parser.add_argument("--dataset", required=True, help="the dataset the scores were made on")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--tag", default=None, help="report name; default: the first folder's")
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "collaborative-signal", "results"),
    )
    args = parser.parse_args()
    counts = counts_from_atomic(dataset_folder(args.data_path, args.dataset), args.dataset)
    scores, targets = _score_files(args.scores_dirs, args.dataset)
    cold = cold_mask(targets, counts)
    buckets = {k: m for k, m in popularity_buckets(targets, counts).items() if m.any()}
    rows = {}
    for model, model_scores in scores.items():
        ranks = positive_ranks(model_scores, model)
        rows[model] = {
            "n_users": len(ranks),
            "n_cold": int(cold.sum()),
            "all": ranking_metrics(ranks, (1, 3, 5)),
            "cold": ranking_metrics(ranks[cold], (1, 3, 5)),
            "warm": ranking_metrics(ranks[~cold], (1, 3, 5)),
            "by_target_training_count": {
                label: ranking_metrics(ranks[mask], (1, 5)) for label, mask in buckets.items()
            },
        }
    info = run_info(" ".join(["python"] + sys.argv))
    tag = args.tag or os.path.basename(os.path.normpath(args.scores_dirs[0]))
    lines = [
        f"# Cold-item slice: {tag}",
        "",
        f"Test users whose target has at most {COLD_MAX_TRAIN_INTERACTIONS} training "
        "interactions (cold) vs the rest (warm); same stored candidates and scores as the "
        "benchmark.",
        "",
        f"Command: `{info['command']}`  ",
        f"Commit: `{info['commit']}`",
        "",
        "| model | users | cold users | HR@1 cold | NDCG@5 cold | HR@1 warm | NDCG@5 warm | "
        "HR@1 all | NDCG@5 all |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, r in rows.items():
        cells = [r[part][k] for part in ("cold", "warm", "all") for k in ("hit@1", "ndcg@5")]
        lines.append(
            f"| {model} | {r['n_users']} | {r['n_cold']} | "
            + " | ".join(f"{v:.4f}" for v in cells)
            + " |"
        )
    labels = [f"{label} ({int(mask.sum())} users)" for label, mask in buckets.items()]
    lines += [
        "",
        "## HR@1 / NDCG@5 by the target's training interactions",
        "",
        "| model | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for model, r in rows.items():
        cells = [
            f"{m['hit@1']:.3f} / {m['ndcg@5']:.3f}" for m in r["by_target_training_count"].values()
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    save_report(args.out, f"cold-{tag}", {"rows": rows, "run": info}, lines)


if __name__ == "__main__":
    main()
