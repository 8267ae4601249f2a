"""Cold-item slice of a finished benchmark, from its stored per-user scores (nothing re-run).

    python benchmarks/cold_items.py benchmarks/results/scores/ml-100k-uni9 --dataset ml-100k
    python benchmarks/cold_items.py benchmarks/results/scores/amazon-games-2000u-uni9 \\
        --dataset amazon-games-u2000-s2020 --data-path benchmarks/results/tmp

A test user is in the slice when their target item has at most 5 training interactions
(leave-one-out: all but each user's last two interactions are training data). Newer
``instructrec bench`` runs report the slice themselves.
"""

import argparse
import glob
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recbole_instructrec.bench.cold_items import (  # noqa: E402
    COLD_MAX_TRAIN_INTERACTIONS,
    cold_mask,
    counts_from_atomic,
)
from recbole_instructrec.bench.metrics import positive_ranks, ranking_metrics  # noqa: E402
from recbole_instructrec.bench.report import run_info, save_report  # noqa: E402
from recbole_instructrec.bench.user_sample import dataset_folder  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores_dir")
    parser.add_argument("--dataset", required=True, help="the dataset the scores were made on")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    counts = counts_from_atomic(dataset_folder(args.data_path, args.dataset), args.dataset)
    rows = {}
    for path in sorted(glob.glob(os.path.join(args.scores_dir, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        ranks = positive_ranks(np.array([r["scores"] for r in records]))
        cold = cold_mask([r["items"][0] for r in records], counts)
        model = os.path.basename(path)[: -len(".jsonl")].replace(args.dataset + "-", "", 1)
        rows[model] = {
            "n_users": len(records),
            "n_cold": int(cold.sum()),
            "all": ranking_metrics(ranks, (1, 3, 5)),
            "cold": ranking_metrics(ranks[cold], (1, 3, 5)),
            "warm": ranking_metrics(ranks[~cold], (1, 3, 5)),
        }
    info = run_info(" ".join(["python"] + sys.argv))
    tag = os.path.basename(os.path.normpath(args.scores_dir))
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
    save_report(args.out, f"cold-{tag}", {"rows": rows, "run": info}, lines)


if __name__ == "__main__":
    main()
