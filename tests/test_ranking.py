"""The one ranking rule: pessimistic ties, non-finite scores refused, RecBole's evaluator agrees."""

import numpy as np
import pytest
import torch

from recbole_instructrec.scoring.fusion import fit_weight
from recbole_instructrec.scoring.ranking import (
    NonFiniteScoreError,
    metric_of_ranks,
    positive_ranks,
    ranked_order,
    ranking_metrics,
)


def test_a_tie_counts_against_the_positive():
    # A constant scorer ranks the positive last, never first.
    assert positive_ranks(np.zeros((2, 10))).tolist() == [9, 9]
    assert positive_ranks(np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 2.0]])).tolist() == [1, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_score_stops_with_the_model_and_user_named(bad):
    scores = np.array([[0.5, 0.1], [bad, 0.2]])
    with pytest.raises(NonFiniteScoreError, match=r"SASRec gave user u7 .*NaN or infinite"):
        positive_ranks(scores, "SASRec", ["u3", "u7"])
    with pytest.raises(NonFiniteScoreError, match="InstructRec gave user 42"):
        ranked_order([0.1, bad], "InstructRec", "42")


def test_a_nan_positive_is_not_a_hit_by_accident():
    # Without the check, NaN >= x is False for every x, which would rank a NaN positive first.
    scores = np.array([[np.nan, 0.1, 0.2]])
    assert (scores[:, 1:] >= scores[:, :1]).sum() == 0  # the trap the check closes
    with pytest.raises(NonFiniteScoreError):
        positive_ranks(scores)


def test_a_list_keeps_the_given_order_among_equal_scores():
    assert ranked_order([0.2, 0.5, 0.2, 0.5]).tolist() == [1, 3, 0, 2]


def test_fusion_weight_fit_ranks_ties_against_the_positive():
    # Every weight gives a tie between the positive and a negative: the pessimistic rule scores
    # hit@1 = 0 for all of them (the optimistic rule it replaces scored 1).
    groups = [(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]))] * 3
    weight, table = fit_weight(groups, "Hit@1", grid=(0.0, 1.0))
    assert set(table.values()) == {0.0}


def _recbole_metrics(scores, ks):
    """RecBole's evaluator on the same scores: its topk collector, then its Hit and NDCG."""
    from recbole.config import Config
    from recbole.evaluator.metrics import NDCG, Hit

    Config.compatibility_settings(None)  # the numpy aliases RecBole's metrics use, as Config sets
    config = {"topk": list(ks), "metric_decimal_place": 8}
    topk = torch.topk(torch.as_tensor(scores), max(ks), dim=1).indices
    pos_index = (topk == 0).numpy()  # the positive is column 0
    pos_len = np.ones(len(scores), dtype=np.int64)
    hit = Hit(config).metric_info(pos_index).mean(axis=0)
    ndcg = NDCG(config).metric_info(pos_index, pos_len).mean(axis=0)
    return {
        **{f"hit@{k}": float(hit[k - 1]) for k in ks},
        **{f"ndcg@{k}": float(ndcg[k - 1]) for k in ks},
    }


def test_recbole_evaluator_gives_the_same_numbers_on_scores_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(500, 10))
    ours = ranking_metrics(positive_ranks(scores), (1, 3, 5))
    theirs = _recbole_metrics(scores, (1, 3, 5))
    for key, value in ours.items():
        assert value == pytest.approx(theirs[key], abs=1e-9), key


def test_with_ties_recbole_can_only_be_as_good_or_better():
    # torch.topk breaks ties arbitrarily, so a tied positive may come first there; ours never.
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(500, 10)).astype(float)
    ours = ranking_metrics(positive_ranks(scores), (1, 5))
    theirs = _recbole_metrics(scores, (1, 5))
    assert ours["hit@1"] < theirs["hit@1"]
    assert all(ours[k] <= theirs[k] + 1e-12 for k in ours)


def test_metric_values_per_user():
    ranks = np.array([0, 1, 4, 9])
    assert metric_of_ranks(ranks, "hit", 5).tolist() == [1, 1, 1, 0]
    assert metric_of_ranks(ranks, "ndcg", 5)[1] == pytest.approx(1 / np.log2(3))
    assert metric_of_ranks(ranks, "mrr", 10).tolist() == [1, 0.5, 0.2, 0.1]
    with pytest.raises(ValueError, match="unknown ranking metric"):
        metric_of_ranks(ranks, "auc", 5)
