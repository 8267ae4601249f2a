"""Hybrid InstructRec: collaborative item tokens next to item titles (LLaRA-style)."""

import os

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.scoring.item_tokens import CollabCheckpointError, ItemTokenEmbedding
from recbole_instructrec.scoring.recbole_checkpoint import load_recbole_checkpoint
from recbole_instructrec.scoring.retriever import RetrieverError


def _model(tmp_path, llm, **settings):
    config = Config(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, llm, **settings)
    )
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), test


def test_projector_embeds_item_tokens_and_leaves_text_tokens_alone():
    torch.manual_seed(0)
    text = torch.nn.Embedding(50, 16)
    table = torch.randn(7, 4)
    layer = ItemTokenEmbedding(text, table, train_table=False, projector_hidden_size=8)
    ids = torch.tensor([[3, 50 + 2, 9, 50 + 6]])
    out = layer(ids)
    assert torch.equal(out[0, 0], text.weight[3]) and torch.equal(out[0, 2], text.weight[9])
    expected = layer.projector(table[torch.tensor([2, 6])]) * layer.scale
    assert torch.allclose(out[0, [1, 3]], expected)
    # item tokens start at the scale of text tokens
    rms = layer.item_vectors(torch.arange(1, 7)).pow(2).mean().sqrt()
    assert torch.isclose(rms, text.weight.pow(2).mean().sqrt(), rtol=1e-4)
    out.sum().backward()
    assert layer.projector[0].weight.grad is not None
    assert not layer.item_table.weight.requires_grad  # a collaborative table stays fixed


def test_rarely_seen_items_share_one_learned_token():
    torch.manual_seed(0)
    text = torch.nn.Embedding(50, 16)
    table = torch.randn(7, 4)
    known = torch.tensor([False, True, True, False, True, False, True])
    layer = ItemTokenEmbedding(text, table, projector_hidden_size=8, known_items=known)
    vectors = layer.item_vectors(torch.arange(7))
    assert torch.allclose(vectors[1], layer.projector(table[1]) * layer.scale)
    assert torch.equal(vectors[3], vectors[5]) and not torch.allclose(vectors[3], vectors[1])
    assert torch.allclose(vectors[3], layer.projector(table[1:].mean(0)) * layer.scale)
    vectors[[3, 5]].sum().backward()  # the shared vector learns from every rare item
    assert layer.rare_item.grad is not None and layer.rare_item.grad.abs().sum() > 0


def test_hybrid_prompt_is_the_text_prompt_plus_one_token_per_item(tmp_path, tiny_llm):
    text_model, _ = _model(tmp_path, tiny_llm)
    model, _ = _model(tmp_path, tiny_llm, item_id_tokens=True)
    first = model.item_tokens.first_item_token
    assert first == len(model.tokenizer)
    history = [3, 7, 11]
    hybrid = model.prompts.prompt_ids(history)
    plain = text_model.prompts.prompt_ids(history)
    assert [t for t in hybrid if t < first] == plain
    items = [t - first for t in hybrid if t >= first]
    assert items == history
    for item in history:  # each item token sits right before its title's first token
        at = hybrid.index(first + item)
        title = model.tokenizer(model.texts[item], add_special_tokens=False)["input_ids"]
        assert hybrid[at + 1 : at + 1 + len(title)] == title
    answer = model.prompts.answer_ids(5)
    assert answer[0] == first + 5 and answer[1:] == text_model.prompts.answer_ids(5)
    assert "<item:3>" in model.prompts.render(history)


def test_hybrid_scores_equal_naive_and_skip_item_tokens(tmp_path, tiny_llm):
    model, test = _model(tmp_path, tiny_llm, item_id_tokens=True, lora_r=0)
    model.eval()
    interaction = next(iter(test))[0]
    with torch.no_grad():
        scores = model.predict(interaction)
    first = model.item_tokens.first_item_token
    seqs, lengths = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    items = interaction[model.ITEM_ID]
    for row in range(0, len(items), 4):
        prompt = model.prompts.prompt_ids(seqs[row, : lengths[row]].tolist())
        answer = model.prompts.answer_ids(items[row].item())
        with torch.no_grad():
            logits = model.llm(torch.tensor([prompt + answer])).logits[0].log_softmax(-1)
        scored = [(k, t) for k, t in enumerate(answer) if t < first]
        expected = sum(logits[len(prompt) - 1 + k, t].item() for k, t in scored) / len(scored)
        assert abs(scores[row].item() - expected) < 1e-4


def test_hybrid_encoder_decoder_scores_skip_item_tokens(tmp_path, tiny_t5):
    model, test = _model(tmp_path, tiny_t5, item_id_tokens=True, lora_r=0)
    model.eval()
    interaction = next(iter(test))[0][:3]
    with torch.no_grad():
        scores = model.predict(interaction)
    first = model.item_tokens.first_item_token
    prompt = model.prompts.prompt_ids(
        interaction[model.ITEM_SEQ][0, : interaction[model.ITEM_SEQ_LEN][0]].tolist()
    )
    answer = model.prompts.answer_ids(interaction[model.ITEM_ID][0].item())
    assert answer[0] == first + interaction[model.ITEM_ID][0].item()
    start = model.llm.config.decoder_start_token_id
    with torch.no_grad():
        out = model.llm(
            input_ids=torch.tensor([prompt]),
            decoder_input_ids=torch.tensor([[start] + answer[:-1]]),
        )
    logprobs = out.logits[0].log_softmax(-1)
    scored = [(k, t) for k, t in enumerate(answer) if t < first]
    expected = sum(logprobs[k, t].item() for k, t in scored) / len(scored)
    assert abs(scores[0].item() - expected) < 1e-4


def test_collab_checkpoint_supplies_the_item_table(tmp_path, tiny_llm, sasrec_checkpoint):
    model, _ = _model(
        tmp_path, tiny_llm, item_id_tokens=True, collab_model_checkpoint=sasrec_checkpoint
    )
    # map_location: the fixture's checkpoint was saved on whatever device the run used.
    state = load_recbole_checkpoint(sasrec_checkpoint, map_location="cpu")["state_dict"]
    assert torch.equal(model.item_tokens.item_table.weight.cpu(), state["item_embedding.weight"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("projector" in n for n in trainable)
    assert not any("item_table" in n for n in trainable)
    assert any("lora_" in n for n in trainable)
    assert not any("projector" in n and "lora_" in n for n in trainable)  # no LoRA on it


def test_hybrid_trains_saves_and_reloads(tmp_path, tiny_llm, sasrec_checkpoint):
    from recbole_instructrec.quick_start.recommend import Recommender

    settings = dict(item_id_tokens=True, collab_model_checkpoint=sasrec_checkpoint)
    result = recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm, **settings)
    )
    assert set(result["test_result"]) >= {"hit@1", "ndcg@5"}
    saved = tmp_path / "saved"
    best = next(f for f in os.listdir(saved) if not f.endswith(".resume.safetensors"))
    recommender = Recommender("tiny", str(saved / best))
    assert recommender.model.item_tokens is not None
    projector = recommender.model.item_tokens.projector[0].weight
    assert not torch.allclose(
        projector, _model(tmp_path, tiny_llm, **settings)[0].item_tokens.projector[0].weight
    )
    assert len(recommender.recommend(user="u1", top_k=3).items) == 3


def test_item_token_min_interactions_gates_by_training_count(tmp_path, tiny_llm, sasrec_checkpoint):
    from recbole_instructrec.quick_start.recommend import Recommender

    settings = dict(
        item_id_tokens=True,
        collab_model_checkpoint=sasrec_checkpoint,
        item_token_min_interactions=3,
    )
    config = Config(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm, **settings)
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset)
    counts = train._dataset.counter(train._dataset.iid_field)
    expected = [counts.get(i, 0) >= 3 for i in range(model.n_items)]
    assert model.item_tokens.known_items.tolist() == expected
    assert 0 < sum(expected) < model.n_items - 1
    assert any(n.endswith("rare_item") and p.requires_grad for n, p in model.named_parameters())
    # trained, saved and reloaded by the recommender with the same gate
    recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm, **settings)
    )
    saved = tmp_path / "saved"
    best = next(f for f in os.listdir(saved) if not f.endswith(".resume.safetensors"))
    recommender = Recommender("tiny", str(saved / best))
    assert recommender.model.item_token_min_interactions == 3
    # The recommender loads the whole dataset, where more items pass the threshold; the gate
    # it serves with is still the one the model was trained with.
    whole = recommender.dataset.counter(recommender.dataset.iid_field)
    assert [whole.get(i, 0) >= 3 for i in range(model.n_items)] != expected
    assert recommender.model.item_tokens.known_items.tolist() == expected
    rare = recommender.model.item_tokens.rare_item
    assert not torch.allclose(rare, model.item_tokens.rare_item)  # the trained vector came back
    assert len(recommender.recommend(user="u1", top_k=3).items) == 3


def test_a_gate_from_another_vocabulary_is_refused(tmp_path, tiny_llm, sasrec_checkpoint):
    from recbole_instructrec.trainer import checkpoint as ckpt

    settings = dict(
        item_id_tokens=True,
        collab_model_checkpoint=sasrec_checkpoint,
        item_token_min_interactions=3,
    )
    model, _ = _model(tmp_path, tiny_llm, **settings)
    (name,) = ckpt.kept_buffers(model)
    assert name.endswith("known_items")
    tensors = {"buffer/" + name: torch.ones(model.n_items + 1, dtype=torch.bool)}
    with pytest.raises(ckpt.CheckpointError, match="item_token_min_interactions"):
        ckpt.load_model_state(model, tensors)


def test_negative_item_token_min_interactions_is_refused(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="item_token_min_interactions=-1 must be an integer"):
        _model(tmp_path, tiny_llm, item_id_tokens=True, item_token_min_interactions=-1)


def test_learned_item_table_trains_jointly(tmp_path, tiny_llm):
    model, _ = _model(tmp_path, tiny_llm, item_id_tokens=True, collab_embedding_size=8)
    assert model.item_tokens.item_table.weight.shape == (model.n_items, 8)
    assert model.item_tokens.item_table.weight.requires_grad


def test_curriculum_moves_from_text_to_hybrid(tmp_path, tiny_llm):
    model, _ = _model(
        tmp_path,
        tiny_llm,
        item_id_tokens=True,
        item_token_curriculum_steps=4,
        eval_template="seq-match-1",  # the curriculum moves the instruction layout's prompts
    )
    shares = [sum(model._curriculum(200)) / 200 for _ in range(6)]
    assert shares[0] < 0.4 and 0.35 < shares[1] < 0.65 and shares[3:] == [1.0, 1.0, 1.0]


def test_a_setting_the_layout_never_reads_is_refused(tmp_path, tiny_llm):
    """The running list never reads the curriculum; the instruction layout does (the failing
    counterpart: the same setting where it is read builds)."""
    with pytest.raises(ValueError, match="item_token_curriculum_steps=4 is read only by the"):
        _model(tmp_path, tiny_llm, item_id_tokens=True, item_token_curriculum_steps=4)
    _model(
        tmp_path,
        tiny_llm,
        item_id_tokens=True,
        item_token_curriculum_steps=4,
        eval_template="seq-match-1",
    )
    with pytest.raises(ValueError, match="ranking_temperature=0.5 is read only by the likeli"):
        _model(tmp_path, tiny_llm, score_head="items", ranking_temperature=0.5)
    with pytest.raises(ValueError, match="train_request_weight=0.5 is read only by the item"):
        _model(tmp_path, tiny_llm, train_request_weight=0.5)


def test_collab_vocabulary_mismatch_is_a_clear_error(tmp_path, tiny_llm):
    folder = tmp_path / "filtered"
    recbole_instructrec.run_recbole(
        model="SASRec",
        dataset="tiny",
        config_dict=tiny_config(folder, None, load_col=None, item_inter_num_interval="[6,inf)"),
    )
    (name,) = os.listdir(folder / "saved")
    with pytest.raises(RetrieverError, match="collab_model_checkpoint=.*knows .* items"):
        _model(
            tmp_path,
            tiny_llm,
            item_id_tokens=True,
            collab_model_checkpoint=str(folder / "saved" / name),
        )


def test_collab_model_without_item_embeddings_is_refused(tmp_path, tiny_llm):
    folder = tmp_path / "pop"
    recbole_instructrec.run_recbole(
        model="Pop", dataset="tiny", config_dict=tiny_config(folder, None, load_col=None)
    )
    (name,) = os.listdir(folder / "saved")
    with pytest.raises(CollabCheckpointError, match="no item_embedding"):
        _model(
            tmp_path,
            tiny_llm,
            item_id_tokens=True,
            collab_model_checkpoint=str(folder / "saved" / name),
        )


def test_collab_checkpoint_without_item_tokens_is_refused(tmp_path, tiny_llm, sasrec_checkpoint):
    with pytest.raises(ValueError, match="item_id_tokens: True"):
        _model(tmp_path, tiny_llm, collab_model_checkpoint=sasrec_checkpoint)
