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
