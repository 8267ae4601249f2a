"""Score fusion of two benchmark rows on the same stored candidates (no model is re-run).

ANALYSIS ONLY: the weight is fitted on test users (cross-fitted halves), so these numbers never
stand in a headline table. A headline fused row fits its weight on validation users inside the
model (``fusion_model``; ``instructrec bench --models SASRec,InstructRec-LoRA-fused``).

Fusion is the library's own rule (:func:`recbole_instructrec.scoring.fusion.fuse`, the one a
model with ``fusion_model`` ranks by): per user, each model's candidate scores are standardised
(z-scores over its candidates), then fused = z_a + w * z_b, with w from the library's
``FUSION_GRID`` (0: a alone; 100: b alone, in effect). The weight is cross-fitted: users are
split in two seeded halves, w is chosen on one half (best NDCG@5) and scored on the other, and
the other way round, so no user is scored with a weight fitted on it. (Result files written
before this script used the library's rule hold weights of (1 - w) * z_a + w * z_b over a 0-1
grid instead; those without a ``fusion_rule`` entry.)

``--rare-items-of DATASET`` adds popularity-aware fusion: b's weight for candidates with at most
5 training interactions (where an ID model knows little) is fitted apart from the others', each
candidate's fused score divided by 1 + its weight (:func:`mean_fusion`), and every result is
also given on the cold slice.

    python benchmarks/fusion.py <results>/scores/<tag>/ml-100k-InstructRec-LoRA.jsonl.gz \
        <results>/scores/<tag>/ml-100k-SASRec.jsonl.gz --out <results>/fusion-ml-100k.json
"""

import argparse
import json
import sys

import numpy as np
import torch

from recbole_instructrec.bench.cold_items import (  # noqa: E402
    COLD_MAX_TRAIN_INTERACTIONS,
    cold_mask,
)
from recbole_instructrec.bench.report import run_info  # noqa: E402
from recbole_instructrec.bench.score_files import read_score_file  # noqa: E402
from recbole_instructrec.bench.user_sample import dataset_folder  # noqa: E402
from recbole_instructrec.data.training_counts import counts_from_atomic  # noqa: E402
from recbole_instructrec.scoring.fusion import FUSION_GRID, standardise  # noqa: E402
from recbole_instructrec.scoring.fusion import fuse as fuse_scores  # noqa: E402
from recbole_instructrec.scoring.ranking import positive_ranks, ranking_metrics  # noqa: E402

RULE = "z(a) + w * z(b) per user (recbole_instructrec.scoring.fusion.fuse), w from FUSION_GRID"
AWARE_RULE = (
    "(z(a) + w * z(b)) / (1 + w) per candidate, w: one weight of FUSION_GRID for candidates with "
    f"<= {COLD_MAX_TRAIN_INTERACTIONS} training interactions, one for the rest, fitted together"
)


def _load(path):
    rows = read_score_file(path)
    return {r["user"]: (r["items"], np.asarray(r["scores"], dtype=np.float64)) for r in rows}


def fuse(path_a, path_b, seed=0, ks=(1, 3, 5), rare_counts=None):
    """Cross-fitted fusion of two score files. With ``rare_counts`` (item token -> training
    interactions), candidates with at most COLD_MAX_TRAIN_INTERACTIONS get their own weight of b,
    fitted jointly with the others' (popularity-aware fusion), and every result is also
    reported on the cold slice (users whose target is such an item)."""
    a, b = _load(path_a), _load(path_b)
    users = sorted(a)
    if sorted(b) != users or any(a[u][0] != b[u][0] for u in users):
        raise SystemExit("The two score files are not on the same users and candidates.")
    sa = torch.from_numpy(np.stack([a[u][1] for u in users]))
    sb = torch.from_numpy(np.stack([b[u][1] for u in users]))
    za, zb = standardise(sa).numpy(), standardise(sb).numpy()
    halves = np.random.default_rng(seed).permutation(len(users)) % 2
    result = {
        "a": path_a,
        "b": path_b,
        "users": len(users),
        "fusion_rule": RULE,
        "weight_fitted_on": "test users, cross-fitted halves: analysis only, not a headline number",
    }
    plain, result["weights_of_b_per_fold"] = _cross_fit(
        sa, sb, halves, None, [(w, w) for w in FUSION_GRID]
    )
    result["fused"] = ranking_metrics(plain, ks)
    result["a_alone"] = ranking_metrics(positive_ranks(za), ks)
    result["b_alone"] = ranking_metrics(positive_ranks(zb), ks)
    if rare_counts is None:
        return result
    rare = np.stack([cold_mask(a[u][0], rare_counts) for u in users])
    grid = [(w, r) for w in FUSION_GRID for r in FUSION_GRID]
    aware, weights = _cross_fit(sa, sb, halves, rare, grid)
    cold = rare[:, 0]  # the target is each user's first candidate
    result["popularity_aware"] = {
        "rule": AWARE_RULE,
        "weights_of_b_per_fold": [{"others": w, "rare": r} for w, r in weights],
        "rare_candidate_share": round(float(rare.mean()), 4),
        # how often a candidate is the target, rare or not: the base rate a ranker learns
        "target_rate_of_rare_candidates": round(float(cold.sum() / max(rare.sum(), 1)), 4),
        "target_rate_of_other_candidates": round(float((~cold).sum() / max((~rare).sum(), 1)), 4),
        "fused": ranking_metrics(aware, ks),
    }
    result["cold_slice"] = {
        "users": int(cold.sum()),
        "a_alone": ranking_metrics(positive_ranks(za[cold]), ks),
        "b_alone": ranking_metrics(positive_ranks(zb[cold]), ks),
        "fused": ranking_metrics(plain[cold], ks),
        "popularity_aware": ranking_metrics(aware[cold], ks),
    }
    return result


def mean_fusion(sa, sb, weight):
    """The popularity-aware rule: the library's fused scores with a weight per candidate,
    divided by ``1 + weight``, i.e. per candidate the weighted mean of the two z-scores. With
    one weight for all candidates this would rank as the library's rule; with one per group,
    each candidate's score stays on the scale of the others', so a group's weight moves the
    balance between the two models, not the group against the rest."""
    weight = torch.from_numpy(np.asarray(weight, dtype=np.float64))
    return (fuse_scores(sa, sb, weight) / (1 + weight)).numpy()


def _cross_fit(sa, sb, halves, rare, grid):
    """Each half's positive ranks under the (weight, rare weight) of ``grid`` that has the best
    NDCG@5 on the other half; and the two chosen weight pairs."""

    def fused(params, rows):
        if rare is None:
            return fuse_scores(sa[rows], sb[rows], params[0]).numpy()
        return mean_fusion(sa[rows], sb[rows], np.where(rare[rows], params[1], params[0]))

    ranks = np.empty(len(sa), dtype=np.int64)
    weights = []
    for fit_half in (0, 1):
        fit, score = halves == fit_half, halves != fit_half
        best = max(
            grid, key=lambda p: ranking_metrics(positive_ranks(fused(p, fit)), [5])["ndcg@5"]
        )
        weights.append(float(best[0]) if rare is None else tuple(float(w) for w in best))
        ranks[score] = positive_ranks(fused(best, score))
    return ranks, weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores_a")
    parser.add_argument("scores_b")
    parser.add_argument(
        "--rare-items-of",
        default=None,
        metavar="DATASET",
        help="also fit a separate weight for rare candidates (training counts of this dataset)",
    )
    parser.add_argument("--data-path", default=None, help="folder holding DATASET/")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    counts = None
    if args.rare_items_of:
        folder = dataset_folder(args.data_path, args.rare_items_of)
        counts = counts_from_atomic(folder, args.rare_items_of)
    result = fuse(args.scores_a, args.scores_b, rare_counts=counts)
    result["command"] = "python benchmarks/fusion.py " + " ".join(sys.argv[1:])
    result["run"] = run_info(result["command"])  # commit, machine, time
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
