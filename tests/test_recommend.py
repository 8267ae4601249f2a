"""`instructrec recommend` and its Python API on the tiny dataset."""

import json

import pytest

from conftest import DATASET_DIR, tiny_config
from recbole_instructrec.quick_start.cli import instructrec_main
from recbole_instructrec.quick_start.recommend import Recommender


@pytest.fixture(scope="module")
def recommender(tmp_path_factory, tiny_llm):
    folder = tmp_path_factory.mktemp("ask")
    return Recommender("tiny", None, tiny_config(folder, tiny_llm))


def test_history_items_are_excluded_unless_asked(recommender):
    history = recommender.user_history("u1")
    result = recommender.recommend(user="u1", top_k=50)
    ids = {recommender.dataset.token2id("item_id", r["item_id"]) for r in result.items}
    assert ids and not ids & set(history)
    again = recommender.recommend(user="u1", top_k=50, include_history=True)
    assert {recommender.dataset.token2id("item_id", r["item_id"]) for r in again.items} & set(
        history
    )


def test_typed_titles_match_loosely_and_unmatched_ones_are_reported(recommender):
    result = recommender.recommend(
        history_titles=["long road", "TOM & JERRY: laughing together (1985)", "No Such Film"],
        top_k=3,
    )
    assert result.history == ["Long Road (1981)", "Tom & Jerry: Laughing Together (1985)"]
    assert result.unmatched == ["No Such Film"]
    assert [r["rank"] for r in result.items] == [1, 2, 3]


def test_instruction_goes_into_the_prompt(recommender):
    plain = recommender.recommend(user="u2", top_k=5)
    asked = recommender.recommend(user="u2", top_k=5, instruction="something that makes me laugh")
    assert "something that makes me laugh" in asked.prompt
    assert "something that makes me laugh" not in plain.prompt


def test_instruction_guidance_adds_what_the_instruction_changed(recommender):
    """guidance g ranks by z(score) + g * z(score with the instruction - score without it),
    the baseline being the same request without the instruction."""
    import torch

    from recbole_instructrec.scoring.fusion import fuse

    wish = "something that makes me laugh"
    assert recommender.score(user="u2", instruction=wish).uninstructed_scores is None  # default 0
    guided = recommender.score(user="u2", instruction=wish, guidance=1.0)
    plain = recommender.score(user="u2")
    assert guided.pool == plain.pool
    assert torch.allclose(guided.uninstructed_scores, plain.llm_scores)
    effect = guided.llm_scores - plain.llm_scores
    assert effect.abs().max() > 0  # the wish changes the tiny model's scores

    def titles(order):
        return [recommender.model.titles[guided.pool[i]] for i in order]

    n = len(guided.pool)
    expected = fuse(guided.llm_scores, effect, 2.0).argsort(descending=True).tolist()
    assert [r["title"] for r in recommender.rank(guided, n, guidance=2.0).items] == titles(expected)
    # guidance -> infinity ranks by what the instruction changed; the LLM's own score only
    # breaks exact ties of that effect (items whose titles the tiny model reads alike)
    by_effect = titles(
        sorted(range(n), key=lambda i: (-effect[i].item(), -guided.llm_scores[i].item()))
    )
    assert [r["title"] for r in recommender.rank(guided, n, guidance=1e6).items] == by_effect
    unguided = titles(guided.llm_scores.argsort(descending=True).tolist())
    assert [r["title"] for r in recommender.rank(guided, n, guidance=0).items] == unguided
    assert [r["title"] for r in recommender.rank(guided, n).items] == unguided  # served: 0
    with pytest.raises(ValueError, match="instruction_guidance='lots' must be a number >= 0"):
        recommender.rank(guided, n, guidance="lots")


def test_a_recommender_can_serve_with_guidance(tmp_path, tiny_llm):
    settings = tiny_config(tmp_path, tiny_llm, instruction_guidance=1.5)
    recommender = Recommender("tiny", None, settings)
    assert recommender.instruction_guidance == 1.5
    scored = recommender.score(user="u2", instruction="an old film")
    assert scored.uninstructed_scores is not None
    with pytest.raises(ValueError, match="instruction_guidance=-1 must be a number >= 0"):
        Recommender("tiny", None, tiny_config(tmp_path, tiny_llm, instruction_guidance=-1))


def test_cli_json_output(tmp_path, tiny_llm, capsys):
    instructrec_main(
        [
            "recommend",
            "--dataset",
            "tiny",
            "--user",
            "u3",
            "--top-k",
            "4",
            "--json",
            "--set",
            f"data_path={DATASET_DIR}",
            "--set",
            f"llm_path={tiny_llm}",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["items"]) == 4
    assert set(payload["items"][0]) == {"rank", "item_id", "title", "score"}
    scores = [r["score"] for r in payload["items"]]
    assert scores == sorted(scores, reverse=True)


def test_a_trained_checkpoint_is_enough_to_recommend(tmp_path, tiny_llm):
    """The checkpoint carries the dataset, its data_path and the base model."""
    import os

    import recbole_instructrec

    recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm)
    )
    saved = tmp_path / "saved"
    best = next(f for f in os.listdir(saved) if not f.endswith(".resume.safetensors"))
    recommender = Recommender("ml-100k", str(saved / best))
    assert recommender.dataset.dataset_name == "tiny"
    result = recommender.recommend(user="u1", top_k=3)
    assert len(result.items) == 3
    # eval_template: ~ resolved in training is kept as the checkpoint's own field; RecBole's
    # saved config keeps what the user gave, and the recommender reads the field
    from recbole_instructrec.trainer import checkpoint

    meta = checkpoint.read_checkpoint(str(saved / best))[0]["meta"]
    assert meta["config"]["eval_template"] is None
    assert meta["resolved_settings"] == {"eval_template": "seq-list"}
    assert recommender.model.eval_template == "seq-list"
    checkpoint.record_meta(str(saved / best), resolved_settings={"eval_template": "seq-match-1"})
    assert Recommender("tiny", str(saved / best)).model.eval_template == "seq-match-1"


def test_a_checkpoint_keeps_the_item_text_it_was_trained_with(tmp_path, tiny_llm):
    """Titles without categories in training stay without them when served, whatever the
    default (which adds them where the dataset has categories): the item text is the model's."""
    import os

    import recbole_instructrec

    settings = tiny_config(tmp_path, tiny_llm, item_text_categories=False)
    recbole_instructrec.run_recbole(model="InstructRec", dataset="tiny", config_dict=settings)
    saved = tmp_path / "saved"
    best = next(f for f in os.listdir(saved) if not f.endswith(".resume.safetensors"))
    served = Recommender("ml-100k", str(saved / best)).model
    assert "Cursed Harbor (1982)" in served.texts  # as trained
    fresh = Recommender("tiny", None, tiny_config(tmp_path / "fresh", tiny_llm)).model
    assert "Cursed Harbor (1982), Horror" in fresh.texts  # the default, for comparison


def test_a_typed_instruction_follows_the_list_as_a_request(recommender):
    """In the running list (the default layout) a typed wish is the request that
    train_request_templates trains: the same list, then a user turn with the wish."""
    assert recommender.model.prompts.template.layout == "running_list"
    assert recommender.instruction_template == "vague-list"
    (plain,) = recommender._prepare(user="u2")["plans"]
    (asked,) = recommender._prepare(user="u2", instruction="a funny film")["plans"]
    plain_prefix, asked_prefix = plain.requests[0][0], asked.requests[0][0]
    assert asked_prefix[: len(plain_prefix)] == plain_prefix
    assert len(asked_prefix) > len(plain_prefix)
