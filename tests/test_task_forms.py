"""The paper's instruction space: 39 templates, four task forms, intentions and preferences."""

import shutil
from collections import Counter

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from conftest import DATASET_DIR, tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.prompts.intentions import IntentionError
from recbole_instructrec.prompts.templates import TemplateError, load_templates

TEMPLATES = load_templates()


def test_at_least_39_templates_cover_the_whole_space():
    assert len(TEMPLATES) >= 39
    forms = Counter(t.task_form for t in TEMPLATES.values())
    assert set(forms) == {"T0", "T1", "T2", "T3"}
    assert {t.preference for t in TEMPLATES.values()} == {"P0", "P1", "P2"}
    assert {t.intention for t in TEMPLATES.values()} == {"I0", "I1", "I2"}
    for t in TEMPLATES.values():
        assert t.description
        # a running list carries the history after the instruction, not in a slot; its P2
        # templates (P1 + P2) keep the list and add the preference
        if t.layout == "running_list":
            assert "history" not in t.slots, t.id
        else:
            assert ("history" in t.slots) == (t.preference == "P1"), t.id
        assert ("preference" in t.slots) == (t.preference == "P2"), t.id
        assert ("intention" in t.slots) == (t.intention != "I0"), t.id


def _model(tmp_path, llm, dataset="tiny", **settings):
    config = Config(
        model="InstructRec",
        dataset=dataset,
        config_dict=tiny_config(tmp_path, llm, **settings) if dataset == "tiny" else settings,
    )
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), train, test


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_llm):
    model, train, test = _model(tmp_path_factory.mktemp("forms"), tiny_llm)
    return model.eval(), next(iter(test))[0]


def test_every_template_renders_on_the_tiny_dataset(tiny_model):
    model, interaction = tiny_model
    history = interaction[model.ITEM_SEQ][0, : interaction[model.ITEM_SEQ_LEN][0]].tolist()
    items = interaction[model.ITEM_ID][:10].tolist()
    for template in TEMPLATES.values():
        plan = model._builder(template).plan(history, items, target=items[0], user=1)
        assert plan.requests, template.id
        for prefix, conts in plan.requests:
            assert prefix and all(conts)


def test_every_template_renders_on_ml100k(tmp_path):
    from recbole_instructrec.prompts.builder import PromptBuilder
    from recbole_instructrec.prompts.intentions import (
        IntentionSource,
        item_categories,
        load_vague_table,
    )
    from recbole_instructrec.prompts.item_text import item_text_fields, item_texts

    config = Config(model="InstructRec", dataset="ml-100k")
    dataset = create_dataset(config)
    categories = item_categories(config, dataset)
    assert categories[dataset.token2id("item_id", "1")] == ["Animation", "Children's", "Comedy"]
    source = IntentionSource(categories, load_vague_table())
    texts = item_texts(dataset, item_text_fields(config, dataset))
    from conftest import build_tokenizer

    tokenizer = build_tokenizer(str(tmp_path))
    for template in TEMPLATES.values():
        builder = PromptBuilder(tokenizer, texts, template, intentions=source)
        text = builder.render([1, 2, 3], intention=source.vague(1), preference="x")
        assert "{" not in text, template.id
        plan = builder.plan([1, 2, 3], [4, 5, 6], target=4)
        assert plan.requests
    assert source.vague(dataset.token2id("item_id", "1")) == "something animated"
    assert source.explicit_preference([1]).startswith("I mostly enjoy")


def _naive_logprob(llm, prompt, continuation):
    with torch.no_grad():
        logits = llm(torch.tensor([prompt + continuation])).logits[0].log_softmax(-1)
    return sum(logits[len(prompt) - 1 + k, t].item() for k, t in enumerate(continuation))


def test_reranking_one_pass_equals_per_label_computation(tmp_path, tiny_llm):
    model, _, test = _model(tmp_path, tiny_llm, task_form="T3")
    assert model.prompts.template.task_form == "T3"
    model.eval()
    interaction = next(iter(test))[0][:10]  # one user: positive + 9 negatives
    with torch.no_grad():
        scores = model.predict(interaction)
    history = interaction[model.ITEM_SEQ][0, : interaction[model.ITEM_SEQ_LEN][0]].tolist()
    items = interaction[model.ITEM_ID].tolist()
    ((prefix, labels),) = model.prompts.plan(history, items, target=items[0]).requests
    order = model.prompts._shuffled(model.prompts._recent(history), len(items))
    for k, position in enumerate(order):
        expected = _naive_logprob(model.llm, prefix, labels[k])
        assert abs(scores[position].item() - expected) < 1e-4


def test_reranking_order_is_shuffled_and_seeded(tiny_model):
    model, _ = tiny_model
    orders = [tuple(model.prompts._shuffled([i, i + 1], 10)) for i in range(1, 30)]
    assert len({o.index(0) for o in orders}) > 3  # the positive lands in many positions
    assert model.prompts._shuffled([1, 2], 10) == model.prompts._shuffled([1, 2], 10)


def test_pointwise_score_is_yes_minus_no_given_the_whole_prompt(tmp_path, tiny_llm):
    model, _, test = _model(tmp_path, tiny_llm, task_form="T0")
    model.eval()
    interaction = next(iter(test))[0][:10]
    history = interaction[model.ITEM_SEQ][0, : interaction[model.ITEM_SEQ_LEN][0]].tolist()
    items = interaction[model.ITEM_ID].tolist()
    with torch.no_grad():
        scores = model.predict(interaction)
    ((prefix, conts),) = model.prompts.plan(history, items).requests
    yes, no = model.prompts._yes_no
    for k in (0, 3):
        tail = conts[2 * k][: -len(yes)]
        whole = prefix + tail
        expected = _naive_logprob(model.llm, whole, yes) - _naive_logprob(model.llm, whole, no)
        assert abs(scores[k].item() - expected) < 1e-4


@pytest.mark.parametrize("form", ["T0", "T1", "T2", "T3"])
def test_each_form_predicts_and_trains(tmp_path, tiny_llm, form):
    model, train, test = _model(tmp_path, tiny_llm, task_form=form)
    model.eval()
    with torch.no_grad():
        scores = model.predict(next(iter(test))[0])
    assert torch.isfinite(scores).all()
    model.train()
    loss = model.calculate_loss(next(iter(train)))
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_training_draws_templates_at_random(tmp_path, tiny_llm):
    ids = ["seq-match-1", "seq-rerank-1", "seq-point-1", "seq-pair-1", "psearch-match-1"]
    model, train, _ = _model(tmp_path, tiny_llm, train_templates=ids)
    model.train()
    model.calculate_loss(next(iter(train)))
    assert [t.id for t in model.train_templates] == ids


def test_search_tasks_state_the_targets_categories(tiny_model):
    model, interaction = tiny_model
    builder = model._builder(TEMPLATES["search-match-1"])
    target = interaction[model.ITEM_ID][0].item()
    text = builder.render([], intention=model.intentions.specific(target))
    assert model.intentions.categories[target][0] in text


def _contains(ids, run):
    """Whether ``run`` occurs in the token ids ``ids`` as a contiguous subsequence."""
    return bool(run) and any(ids[k : k + len(run)] == run for k in range(len(ids) - len(run) + 1))


def _names(builder, ids, item):
    """Whether the token ids ``ids`` name ``item``: hold the ids of its mention as the builder
    encodes it (its item token too, in hybrid prompts). Compared as ids, not decoded text:
    a decoded word-level prompt reads "Long Road ( 1981 )" and would never hold a title."""
    return _contains(ids, builder._encode_tail(builder.mention(item)))


def _sequential_prompts(model, history):
    """(template id, builder, prompt ids before any candidate) of every sequential template."""
    for template in TEMPLATES.values():
        if (template.preference, template.intention) != ("P1", "I0"):
            continue
        builder = model._builder(template)
        if template.task_form in ("T0", "T1"):
            prompt = builder._cut(builder._recent(history), {})[0]  # before any candidate
        elif template.task_form == "T3":
            prompt = builder.prompt_ids(history, candidates="")
        else:
            prompt = builder.prompt_ids(history)
        yield template.id, builder, prompt


def _user_rows(model, interaction):
    seqs, lengths, targets = (
        interaction[model.ITEM_SEQ],
        interaction[model.ITEM_SEQ_LEN],
        interaction[model.ITEM_ID],
    )
    for row in range(0, len(targets), 10):  # each user's positive row
        yield seqs[row, : lengths[row]].tolist(), targets[row].item()


def test_sequential_prompts_never_contain_the_target(tiny_model):
    model, interaction = tiny_model
    for history, target in _user_rows(model, interaction):
        for template_id, builder, prompt in _sequential_prompts(model, history):
            # The target may appear only as a history item the user had already met.
            shown = builder._recent(history)
            expected = any(
                _names(builder, builder._encode_tail(builder.mention(i)), target) for i in shown
            )
            assert _names(builder, prompt, target) == expected, (template_id, target)


def test_the_leak_check_finds_a_target_put_into_the_history(tiny_model):
    # The counterpart of the test above: the check can fail.
    model, interaction = tiny_model
    for history, target in _user_rows(model, interaction):
        for template_id, builder, prompt in _sequential_prompts(model, history + [target]):
            assert _names(builder, prompt, target), (template_id, target)


def test_unknown_template_and_unfillable_slot_are_named(tmp_path, tiny_llm):
    with pytest.raises(TemplateError, match="nope"):
        _model(tmp_path, tiny_llm, eval_template="nope")
    with pytest.raises(TemplateError, match="train_templates"):
        _model(tmp_path, tiny_llm, train_templates=["seq-match-1", "nope"])
    folder = tmp_path / "nocat"
    folder.mkdir()
    shutil.copy(f"{DATASET_DIR}/tiny/tiny.inter", folder / "nocat.inter")
    with open(f"{DATASET_DIR}/tiny/tiny.item") as src, open(folder / "nocat.item", "w") as dst:
        for line in src:
            dst.write("\t".join(line.split("\t")[:2]) + "\n")
    config = tiny_config(
        tmp_path, tiny_llm, data_path=str(tmp_path), eval_template="search-match-1"
    )
    cfg = Config(model="InstructRec", dataset="nocat", config_dict=config)
    train, _, _ = data_preparation(cfg, create_dataset(cfg))
    with pytest.raises(IntentionError, match="search-match-1.*item_category_field"):
        InstructRec(cfg, train._dataset)


def test_custom_templates_file(tmp_path, tiny_llm):
    custom = tmp_path / "mine.yaml"
    custom.write_text(
        "templates:\n"
        "  - id: my-template\n    preference: P1\n    intention: I0\n    task_form: T2\n"
        "    description: mine\n    instruction: 'Watched: {history}. Next?'\n"
    )
    model, _, _ = _model(
        tmp_path, tiny_llm, instruction_templates=str(custom), eval_template="my-template"
    )
    assert model.prompts.template.id == "my-template"
