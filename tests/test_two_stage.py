"""Two-stage full ranking: a saved RecBole SASRec proposes, the LLM re-ranks its top-K."""

import os

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.scoring.retriever import RetrieverError, load_retriever


def _instructrec(tmp_path, llm, **settings):
    config = Config(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, llm, **settings)
    )
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), test


def test_llm_reranks_the_retrievers_top_k(tmp_path, tiny_llm, sasrec_checkpoint):
    model, test = _instructrec(
        tmp_path, tiny_llm, candidate_model=sasrec_checkpoint, rerank_top_k=5
    )
    model.eval()
    interaction = next(iter(test))[0][:1]
    with torch.no_grad():
        final = model.full_sort_predict(interaction)[0]
        retrieval = model._retriever[0].full_sort_predict(interaction)[0]
    retrieval[0] = float("-inf")  # like RecBole's full evaluation, which masks no history
    top5 = set(retrieval.topk(5).indices.tolist())
    order = final.argsort(descending=True).tolist()
    assert set(order[:5]) == top5  # the LLM re-orders exactly the retriever's top 5
    rest = [i for i in order[5:] if torch.isfinite(final[i])]
    assert rest == sorted(rest, key=lambda i: -retrieval[i].item())  # the rest keep its order
    with torch.no_grad():
        llm = model.predict(_rows(model, interaction, sorted(top5)))
    expected = sorted(top5, key=lambda i: -llm[sorted(top5).index(i)].item())
    assert order[:5] == expected


def _rows(model, interaction, items):
    rows = interaction.repeat(len(items))
    rows.update(type(interaction)({model.ITEM_ID: torch.tensor(items)}))
    return rows


def test_retriever_from_another_dataset_is_refused(tmp_path, sasrec_checkpoint):
    config = Config(
        model="InstructRec", dataset="ml-100k", config_dict={"data_path": str(tmp_path)}
    )
    dataset = create_dataset(config)
    with pytest.raises(RetrieverError, match="trained on dataset 'tiny'"):
        load_retriever(sasrec_checkpoint, dataset)


def test_missing_retriever_file_is_named(tmp_path, tiny_llm):
    with pytest.raises(RetrieverError, match="candidate_model"):
        _instructrec(tmp_path, tiny_llm, candidate_model=str(tmp_path / "nope.pth"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"config": _Exploit(marker), "state_dict": {}}, tmp_path / "evil.pth")
    config = Config(model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, None))
    dataset = create_dataset(config)
    with pytest.raises(RetrieverError, match="system.*not allowed"):
        load_retriever(str(tmp_path / "evil.pth"), dataset)
    assert not marker.exists()


FULL = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


def test_two_stage_keeps_the_retrievers_full_ranking_metrics(tmp_path, tiny_llm):
    """Re-ranking only reorders the retriever's top K: under RecBole's own ``full`` evaluation,
    Hit@k for every k >= K must equal the retriever's, user for user."""
    common = dict(eval_args=FULL, metrics=["Hit"], topk=[3, 5, 10], valid_metric="Hit@10")
    sasrec = recbole_instructrec.run_recbole(
        model="SASRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path / "s", None, epochs=2, load_col=None, **common),
    )
    (name,) = os.listdir(tmp_path / "s" / "saved")
    two_stage = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(
            tmp_path / "i",
            tiny_llm,
            epochs=0,
            lora_r=0,
            candidate_model=str(tmp_path / "s" / "saved" / name),
            rerank_top_k=3,
            **common,
        ),
    )
    for k in (3, 5, 10):
        assert two_stage["test_result"][f"hit@{k}"] == sasrec["test_result"][f"hit@{k}"]


def test_recommending_from_a_retriever_fills_top_k_with_unseen_items(
    tmp_path, tiny_llm, sasrec_checkpoint
):
    from recbole_instructrec.quick_start.recommend import Recommender

    recommender = Recommender(
        "tiny",
        None,
        tiny_config(tmp_path, tiny_llm, candidate_model=sasrec_checkpoint, rerank_top_k=5),
    )
    history = set(recommender.user_history("u1"))
    result = recommender.recommend(user="u1", top_k=5)
    ids = {recommender.dataset.token2id("item_id", r["item_id"]) for r in result.items}
    assert len(ids) == 5 and not ids & history


def test_a_retriever_with_shorter_histories_reads_the_most_recent_items():
    import torch
    from recbole.data.interaction import Interaction

    from recbole_instructrec.scoring.retriever import recent_history

    class Retriever:
        max_seq_length, ITEM_SEQ, ITEM_SEQ_LEN = 3, "seq", "len"

    seq = torch.tensor([[1, 2, 3, 4, 5, 0], [7, 8, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    cut = recent_history(Interaction({"seq": seq, "len": torch.tensor([5, 2, 6])}), Retriever())
    assert cut["seq"].tolist() == [[3, 4, 5], [7, 8, 0], [4, 5, 6]]
    assert cut["len"].tolist() == [3, 2, 3]
