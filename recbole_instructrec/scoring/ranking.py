"""The one ranking rule: where a positive stands among its candidates, and ranking metrics.

Every place that ranks (the benchmark, score fusion and its weight fit, the cold slices and
``recommend``) goes through this module, so a model is never scored by two rules. Ties count
against the positive (pessimistic): a model that gives every candidate the same score ranks the
positive last, not first, so a constant or collapsed scorer cannot look good. A score that is
NaN or infinite stops the evaluation with the model and the user named, because no rule ranks
it meaningfully (NaN compares false with everything, which would count it as a hit).

RecBole's own evaluator ranks with ``torch.topk``, which breaks ties arbitrarily; on scores
without ties the two agree exactly (tests/test_ranking.py).
"""

import math

import numpy as np


class NonFiniteScoreError(ValueError):
    """A candidate score is NaN or infinite; the message names the model and the user."""


def check_finite(scores, model=None, users=None):
    """Raises :class:`NonFiniteScoreError` naming the first user with a non-finite score."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if not bad.any():
        return scores
    row = int(np.flatnonzero(bad.reshape(len(scores), -1).any(axis=1))[0]) if scores.ndim else 0
    user = users[row] if users is not None else f"at row {row}"
    value = scores[row][bad[row]].flat[0] if scores.ndim > 1 else scores[bad].flat[0]
    raise NonFiniteScoreError(
        f"{model or 'The model'} gave user {user} a candidate score of {value}: a NaN or "
        "infinite score cannot be ranked. Check the model's inputs and its dtype (float16 "
        "overflows), or the score file it was read from."
    )


def positive_ranks(scores, model=None, users=None):
    """0-based rank of column 0 (the positive) in each row of ``scores`` (users x candidates).
    Ties count against the positive."""
    scores = check_finite(scores, model, users)
    return (scores[:, 1:] >= scores[:, :1]).sum(axis=1)


def target_ranks(scores, targets):
    """0-based rank of each row's ``targets`` item among all the columns of ``scores`` (a torch
    users x items tensor: full ranking, where items that may not be recommended carry -inf).
    Ties count against the target, as in :func:`positive_ranks`."""
    target_scores = scores.gather(1, targets[:, None])
    return ((scores >= target_scores).sum(1) - 1).cpu().numpy()


def ranked_order(scores, model=None, user=None):
    """Candidate positions from best to worst score, for a list shown to a person; equal
    scores keep the order they were given in (a stable sort), so a list is reproducible."""
    scores = check_finite(np.asarray(scores, dtype=np.float64)[None, :], model, [user])[0]
    return np.argsort(-scores, kind="stable")


def metric_of_ranks(ranks, name, k):
    """Per-user value of ``name``@``k`` (hit, ndcg, mrr, or recall with one relevant item)
    for 0-based ``ranks``."""
    ranks = np.asarray(ranks)
    inside = ranks < k
    if name == "ndcg":
        values = 1.0 / np.log2(ranks + 2.0)
    elif name == "mrr":
        values = 1.0 / (ranks + 1.0)
    elif name in ("hit", "recall"):
        values = np.ones(ranks.shape)
    else:
        raise ValueError(f"unknown ranking metric {name!r}: use hit, ndcg, mrr or recall")
    return np.where(inside, values, 0.0)


def ranking_metrics(ranks, ks):
    """Mean hit@K and ndcg@K over users."""
    ranks = np.asarray(ranks)
    result = {}
    for k in ks:
        for name in ("hit", "ndcg"):
            values = metric_of_ranks(ranks, name, k)
            result[f"{name}@{k}"] = float(values.mean()) if len(ranks) else math.nan
    return result
