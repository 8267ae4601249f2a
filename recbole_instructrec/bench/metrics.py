"""Hit@K and NDCG@K from the rank of the positive among its candidates."""

import numpy as np


def positive_ranks(scores):
    """0-based rank of column 0 in each row; ties count against the positive (pessimistic)."""
    scores = np.asarray(scores, dtype=np.float64)
    return (scores[:, 1:] >= scores[:, :1]).sum(axis=1)


def ranking_metrics(ranks, ks):
    ranks = np.asarray(ranks)
    result = {}
    for k in ks:
        hit = ranks < k
        result[f"hit@{k}"] = float(hit.mean()) if len(ranks) else float("nan")
        result[f"ndcg@{k}"] = (
            float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
            if len(ranks)
            else float("nan")
        )
    return result
