"""Score fusion, the simplest hybrid: a user's LLM scores plus a weight times a saved
RecBole model's scores for the same candidates, both standardised per user.

Per-user z-scores put a log-likelihood and a dot product on one scale, so one weight serves
every user. The weight is fitted on the validation set (:func:`fit_weight`) from a fixed grid:
a grid rather than an optimiser because the ranking metrics are step functions of the weight.
"""

import re

import torch

from recbole_instructrec.scoring.ranking import metric_of_ranks, positive_ranks

# 0 is the LLM alone; 100 is the retriever alone, in effect (the LLM only breaks its ties).
FUSION_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)


class FusionError(ValueError):
    """A fusion setting that cannot work; the message names it and says how to fix it."""


def standardise(scores):
    """Per-user z-scores over the last dimension (a user's candidates); a user with one
    candidate (or all equal) gets zeros."""
    scores = scores.double()
    if scores.shape[-1] < 2:
        return torch.zeros_like(scores)
    spread = scores.std(dim=-1, unbiased=False, keepdim=True)
    centred = scores - scores.mean(dim=-1, keepdim=True)
    return torch.where(spread > 0, centred / spread, torch.zeros_like(scores))


def fuse(llm_scores, retriever_scores, weight):
    """``z(llm_scores) + weight * z(retriever_scores)``, per user. ``weight`` is a number, or a
    tensor of per-candidate weights broadcastable to the scores (one user's candidates, or a
    users x candidates batch)."""
    weight = weight.double() if torch.is_tensor(weight) else float(weight)
    return standardise(llm_scores) + weight * standardise(retriever_scores)


def parse_metric(valid_metric):
    """("ndcg", 5) from RecBole's ``valid_metric`` (e.g. ``NDCG@5``)."""
    match = re.fullmatch(r"(hit|ndcg|mrr|recall)@(\d+)", str(valid_metric).strip().lower())
    if not match:
        raise FusionError(
            f"fusion_weight is fitted on valid_metric, but {valid_metric!r} is not one of "
            "Hit@K, NDCG@K, MRR@K or Recall@K; set valid_metric to one of them, or give "
            "fusion_weight=<number> to skip the fit."
        )
    return match.group(1), int(match.group(2))


def fit_weight(groups, valid_metric, grid=FUSION_GRID):
    """The grid weight with the best mean ``valid_metric`` over ``groups``, and every weight's
    value. Each group is one user's (LLM scores, retriever scores), the positive first; ties
    go to the smaller weight, the one that leaves the instruction more say."""
    if not groups:
        raise FusionError(
            "fusion_weight could not be fitted: the validation set is empty. Give "
            "fusion_weight=<number>, or keep a validation split in eval_args."
        )
    name, k = parse_metric(valid_metric)
    table = {}
    for weight in grid:
        ranks = [
            positive_ranks(fuse(llm, retriever, weight)[None].cpu().numpy(), "score fusion")[0]
            for llm, retriever in groups
        ]
        table[weight] = float(metric_of_ranks(ranks, name, k).mean())
    best = max(table.values())
    return next(w for w in grid if table[w] == best), table
