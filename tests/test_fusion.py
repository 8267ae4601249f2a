"""Score fusion: standardised LLM scores plus a weight times a saved RecBole model's scores,
the weight fitted on validation."""

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.scoring.fusion import (
    FUSION_GRID,
    FusionError,
    fit_weight,
    fuse,
    standardise,
)
from recbole_instructrec.scoring.retriever import load_retriever


def _groups(n_users, llm_knows, retriever_knows, seed=0):
    """Users with 10 candidates, the positive first; a model that "knows" puts it on top."""
    g = torch.Generator().manual_seed(seed)
    groups = []
    for _ in range(n_users):
        llm, retriever = torch.randn(10, generator=g), torch.randn(10, generator=g)
        if llm_knows:
            llm[0] = llm.max() + 1
        if retriever_knows:
            retriever[0] = retriever.max() + 1
        groups.append((llm, retriever))
    return groups


def test_fit_weight_follows_the_informative_model():
    assert fit_weight(_groups(40, True, False), "NDCG@5")[0] == 0.0
    weight, table = fit_weight(_groups(40, False, True), "Hit@1")
    assert table[weight] == 1.0 and table[0.0] < 0.5
    # the smallest weight at which the retriever's knowledge wins every user
    assert all(table[w] < 1.0 for w in FUSION_GRID if w < weight)
    # both perfect: every weight ties, and the tie goes to the smallest (the LLM's say)
    assert fit_weight(_groups(10, True, True), "MRR@10")[0] == 0.0


def test_fuse_standardises_each_side():
    fused = fuse(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([300.0, 200.0, 100.0]), 1.0)
    assert torch.allclose(fused, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(fuse(torch.tensor([5.0]), torch.tensor([7.0]), 2.0), torch.zeros(1).double())


def test_unfittable_metric_names_valid_metric():
    with pytest.raises(FusionError, match="valid_metric.*AUC"):
        fit_weight(_groups(3, True, False), "AUC")
    with pytest.raises(FusionError, match="validation set is empty"):
        fit_weight([], "NDCG@5")


def _model(tmp_path, llm, **settings):
    config = Config(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, llm, **settings)
    )
    init_seed(config["seed"], True)
    train, valid, test = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), train._dataset, test


@pytest.mark.parametrize("head", [{}, {"score_head": "items"}], ids=["likelihood", "items"])
def test_a_large_weight_ranks_like_the_fusion_model(tmp_path, tiny_llm, sasrec_checkpoint, head):
    model, dataset, test = _model(
        tmp_path, tiny_llm, fusion_model=sasrec_checkpoint, fusion_weight=FUSION_GRID[-1], **head
    )
    model.eval()
    sasrec = load_retriever(sasrec_checkpoint, dataset)
    interaction = next(iter(test))[0]
    with torch.no_grad():
        fused, llm_only = model.predict(interaction), model._llm_predict(interaction)[1]
        expected = sasrec.predict(interaction)
    groups, _ = model._llm_predict(interaction)
    assert len(groups) > 1
    weight = FUSION_GRID[-1]
    for rows in groups:
        z_llm, z_model = standardise(llm_only[rows]), standardise(expected[rows])
        assert torch.allclose(fused[rows].double(), z_llm + weight * z_model, atol=1e-4)
        # Wherever the fusion model's gap, weighted, outweighs every difference of the LLM's,
        # the fused order is the fusion model's; at this weight that is most pairs.
        decisive = weight * (z_model[:, None] - z_model[None, :]) > z_llm.max() - z_llm.min()
        assert decisive.sum() > len(rows) * (len(rows) - 1) / 4
        assert (fused[rows][:, None] > fused[rows][None, :])[decisive].all()
    assert not torch.equal(fused, llm_only)
    # predict_parts: the fused scores and, from the same pass, the LLM's own.
    with torch.no_grad():
        parts = model.predict_parts(interaction)
    assert torch.equal(parts[0], fused) and torch.equal(parts[1], llm_only)


def test_run_recbole_fits_the_weight_on_validation(tmp_path, tiny_llm, sasrec_checkpoint):
    result = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, tiny_llm, fusion_model=sasrec_checkpoint),
    )
    assert set(result["test_result"]) >= {"hit@1", "ndcg@5"}
    assert result["fusion_weight"] in FUSION_GRID


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"fusion_weight": 1.0}, "fusion_weight=1.0 weighs the scores of fusion_model"),
        ({"fusion_model": "@", "fusion_weight": -1}, "fusion_weight=-1 must be a number >= 0"),
        (
            {"fusion_model": "@", "eval_args": {"mode": "full", "order": "TO"}},
            "fusion_model fuses scores of sampled candidates",
        ),
    ],
)
def test_bad_fusion_settings_say_which_and_how(
    tmp_path, tiny_llm, sasrec_checkpoint, settings, message
):
    if settings.get("fusion_model") == "@":
        settings = dict(settings, fusion_model=sasrec_checkpoint)
    with pytest.raises(FusionError, match=message):
        _model(tmp_path, tiny_llm, **settings)


def test_predicting_before_the_weight_is_fitted_says_how(tmp_path, tiny_llm, sasrec_checkpoint):
    model, _, test = _model(tmp_path, tiny_llm, fusion_model=sasrec_checkpoint)
    model.eval()
    with pytest.raises(FusionError, match="fusion_weight is not fitted"):
        model.predict(next(iter(test))[0])
    with model.provisional_fusion_weight(0.0):
        scores = model.predict(next(iter(test))[0])
    assert model.fusion_weight is None and torch.isfinite(scores).all()


def test_a_fused_checkpoint_is_served_as_it_was_tested(tmp_path, tiny_llm, sasrec_checkpoint):
    """The fitted weight is recorded in the checkpoint, so `instructrec recommend` ranks by the
    fused scores, and a re-ranking at another weight needs no second scoring pass."""
    import os

    from recbole_instructrec.quick_start.recommend import Recommender
    from recbole_instructrec.trainer import checkpoint as ckpt

    result = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, tiny_llm, fusion_model=sasrec_checkpoint),
    )
    saved = tmp_path / "saved"
    best = str(saved / next(f for f in os.listdir(saved) if not f.endswith("resume.safetensors")))
    header, tensors = ckpt.read_checkpoint(best)
    assert header["meta"]["fusion_weight"] == result["fusion_weight"]
    assert any(k.startswith("model/") for k in tensors) and any(
        k.startswith("rng/") for k in tensors
    )

    rec = Recommender("tiny", best)
    assert rec.model.fusion_weight == result["fusion_weight"]
    scored = rec.score(user="u1")
    served = rec.recommend(user="u1", top_k=len(scored.pool))
    fused = fuse(scored.llm_scores, scored.fusion_scores, result["fusion_weight"])
    assert [r["score"] for r in served.items] == [
        round(float(v), 4) for v in fused.sort(descending=True).values
    ]
    assert all("llm_score" in r for r in served.items)

    # the fusion model's scores are SASRec's own for this user's next item
    sasrec = load_retriever(sasrec_checkpoint, rec.dataset)
    interaction = rec._history_interaction(rec.user_history("u1"))
    expected = sasrec.full_sort_predict(interaction)[0, scored.pool].float()
    assert torch.allclose(scored.fusion_scores, expected)

    # weight 0 ranks by the LLM alone, from the same scores
    alone = rec.rank(scored, len(scored.pool), fusion_weight=0.0)
    order = scored.llm_scores.argsort(descending=True).tolist()
    by_llm = [rec.model.titles[scored.pool[i]] for i in order]
    assert [r["title"] for r in alone.items] == by_llm


def test_serving_a_fused_model_without_a_weight_says_how(tmp_path, tiny_llm, sasrec_checkpoint):
    from recbole_instructrec.quick_start.recommend import Recommender

    settings = tiny_config(tmp_path, tiny_llm, fusion_model=sasrec_checkpoint)
    with pytest.raises(FusionError, match="give fusion_weight=<number>.*fusion_weight=0"):
        Recommender("tiny", None, settings)
    rec = Recommender("tiny", None, dict(settings, fusion_weight=2.0))
    assert rec.model.fusion_weight == 2.0
    # the fusion model cannot read an instruction, so by default the instruction is guided
    assert rec.instruction_guidance == 1.0
    assert rec.score(user="u1", instruction="a film").uninstructed_scores is not None
    unguided = Recommender("tiny", None, dict(settings, fusion_weight=2.0, instruction_guidance=0))
    assert unguided.instruction_guidance == 0.0
