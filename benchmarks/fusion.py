"""Score fusion of two benchmark rows on the same stored candidates (no model is re-run).

Per user, each model's candidate scores are standardised (z-scores over its candidates), then
fused = (1 - w) * z_a + w * z_b. The weight is cross-fitted: users are split in two seeded
halves, w is chosen on one half (grid, best NDCG@5) and scored on the other, and the other way
round, so no user is scored with a weight fitted on it.

    python benchmarks/fusion.py benchmarks/results/scores/ml-100k-uni9/ml-100k-InstructRec-LoRA.jsonl \
        benchmarks/results/scores/ml-100k-uni9/ml-100k-SASRec.jsonl --out benchmarks/results/fusion-ml-100k.json
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole_instructrec.bench.metrics import positive_ranks, ranking_metrics  # noqa: E402

GRID = np.round(np.linspace(0, 1, 21), 2)


def _load(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["user"]: (r["items"], np.asarray(r["scores"], dtype=np.float64)) for r in rows}


def _z(scores):
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def fuse(path_a, path_b, seed=0, ks=(1, 3, 5)):
    a, b = _load(path_a), _load(path_b)
    users = sorted(a)
    if sorted(b) != users or any(a[u][0] != b[u][0] for u in users):
        raise SystemExit("The two score files are not on the same users and candidates.")
    za = _z(np.stack([a[u][1] for u in users]))
    zb = _z(np.stack([b[u][1] for u in users]))
    halves = np.random.default_rng(seed).permutation(len(users)) % 2
    ranks = np.empty(len(users), dtype=np.int64)
    weights = []
    for fit_half in (0, 1):
        fit, score = halves == fit_half, halves != fit_half

        def ndcg5(w, rows):
            return ranking_metrics(positive_ranks((1 - w) * za[rows] + w * zb[rows]), [5])["ndcg@5"]

        best = max(GRID, key=lambda w: ndcg5(w, fit))
        weights.append(float(best))
        ranks[score] = positive_ranks((1 - best) * za[score] + best * zb[score])
    return {
        "a": path_a,
        "b": path_b,
        "users": len(users),
        "weights_of_b_per_fold": weights,
        "fused": ranking_metrics(ranks, ks),
        "a_alone": ranking_metrics(positive_ranks(za), ks),
        "b_alone": ranking_metrics(positive_ranks(zb), ks),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores_a")
    parser.add_argument("scores_b")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = fuse(args.scores_a, args.scores_b)
    result["command"] = "python benchmarks/fusion.py " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
