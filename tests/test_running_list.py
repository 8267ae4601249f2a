"""The running-list layout: one pass scores every position exactly as evaluation scores it."""

import collections

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import DATASET_DIR, tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.prompts.templates import TemplateError, load_templates
from recbole_instructrec.scoring import continuation
from recbole_instructrec.scoring.continuation import ContinuationScorer
from recbole_instructrec.trainer.trainer import window_end_rows

LIST = {"eval_template": "seq-list"}


def _model(llm_path, **settings):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict={"data_path": DATASET_DIR, "llm_path": llm_path, **LIST, **settings},
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), train


def _row_and_negatives(model, window, per_position=3):
    builder = model.prompts
    row = builder.training_row(window)
    items = model._sample_negatives(row.histories, row.items)
    negatives = [[builder.piece(n) for n in position[:per_position]] for position in items]
    return builder, row, negatives


def _per_prefix(scorer, row, negatives):
    """The same scores, each prefix scored on its own by the evaluation path."""
    prompts = [row.ids[:cut] for cut in row.cuts]
    conts = [
        [row.ids[cut : cut + n]] + negs for cut, n, negs in zip(row.cuts, row.lengths, negatives)
    ]
    return scorer.score(prompts, conts).logprob_sums


@pytest.fixture(scope="module")
def float64_model(tiny_llm):
    model, _ = _model(tiny_llm, train_negatives=3)
    model.llm.double().eval()
    return model


def test_every_position_equals_scoring_that_prefix_alone(float64_model):
    model = float64_model
    window = list(range(1, 12))
    builder, row, negatives = _row_and_negatives(model, window)
    assert len(row.cuts) == 10  # max_history_items positions from 11 items
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    with torch.no_grad():
        one_pass = scorer.score_running_lists([row, row], [negatives, negatives])
        alone = _per_prefix(scorer, row, negatives)
    assert len(one_pass.logprob_sums) == 20
    for got, expected in zip(one_pass.logprob_sums, alone + alone):
        assert torch.allclose(got, expected, atol=1e-9, rtol=0)
    # and evaluation builds exactly those prefixes and continuations
    for k, cut in enumerate(row.cuts):
        plan = builder.plan(row.histories[k], [row.items[k]])
        ((prefix, (answer,)),) = plan.requests
        assert prefix == row.ids[:cut]
        assert answer == row.ids[cut : cut + row.lengths[k]]


def test_a_negative_that_sees_the_rest_of_the_list_is_caught(float64_model, monkeypatch):
    """The check above fails when negatives may read past their prefix (a leak)."""
    model = float64_model
    _, row, negatives = _row_and_negatives(model, list(range(1, 12)))
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    original = continuation._block_attention_mask

    def leaky(q_group, q_pos, q_limit, k_group, k_pos, dtype):
        return original(q_group, q_pos, q_pos + 1, k_group, k_pos, dtype)

    monkeypatch.setattr(continuation, "_block_attention_mask", leaky)
    with torch.no_grad():
        one_pass = scorer.score_running_lists([row], [negatives]).logprob_sums
    monkeypatch.undo()
    with torch.no_grad():
        alone = _per_prefix(scorer, row, negatives)
    differ = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(one_pass, alone)]
    assert any(differ)


def test_each_training_interaction_is_a_positive_once_per_epoch(tiny_llm):
    model, train = _model(tiny_llm)
    dataset = train._dataset
    users = dataset.inter_feat[dataset.uid_field].numpy()
    keep = window_end_rows(users, model)
    seqs = dataset.inter_feat[model.ITEM_SEQ].tolist()
    lengths = dataset.inter_feat[model.ITEM_SEQ_LEN].tolist()
    targets = dataset.inter_feat[model.POS_ITEM_ID].tolist()
    expected = collections.Counter(zip(users.tolist(), targets))
    trained = collections.Counter()
    for r in keep.nonzero()[0]:
        row = model.prompts.training_row(seqs[r][: lengths[r]] + [targets[r]])
        trained.update((int(users[r]), item) for item in row.items)
    assert trained == expected
    assert keep.sum() < len(users) / 3  # far fewer rows than prefixes


def test_users_interleaved_are_refused(tiny_llm):
    model, _ = _model(tiny_llm)
    with pytest.raises(ValueError, match="in time order"):
        window_end_rows(torch.tensor([1, 2, 1]).numpy(), model)


def test_training_and_evaluation_must_share_a_layout(tiny_llm):
    with pytest.raises(ValueError, match="mix the layouts"):
        _model(tiny_llm, train_templates=["seq-list", "seq-match-1"])


def test_encoder_decoder_models_keep_the_instruction_layout(tiny_t5):
    with pytest.raises(ValueError, match="encoder-decoder"):
        _model(tiny_t5)


def test_a_running_list_template_with_slots_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "templates:\n  - id: bad\n    preference: P1\n    intention: I0\n    task_form: T2\n"
        "    layout: running_list\n    instruction: 'Continue {history}'\n"
    )
    with pytest.raises(TemplateError, match="running_list"):
        load_templates(str(path))


def test_run_recbole_trains_every_position_and_evaluates(tmp_path, tiny_llm):
    config = tiny_config(tmp_path, tiny_llm, train_steps_per_epoch=None, **LIST)
    result = recbole_instructrec.run_recbole("InstructRec", "tiny", config_dict=config)
    assert 0.0 <= result["test_result"]["hit@1"] <= 1.0
    assert len(list((tmp_path / "saved").iterdir())) == 2


def test_item_tokens_train_in_the_running_list(tiny_llm):
    model, train = _model(tiny_llm, item_id_tokens=True, train_negatives=2)
    model.train()
    loss = model.calculate_loss(next(iter(train))[:4])
    loss.backward()
    assert torch.isfinite(loss)
    trained = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is not None]
    assert any("lora" in n for n in trained)
    assert len(trained) > sum("lora" in n for n in trained)  # the item table / projector too


@pytest.mark.parametrize(
    "llm, settings, expected",
    [
        ("tiny_llm", {}, "seq-list"),  # a causal LM trains every position by default
        ("tiny_t5", {}, "seq-match-1"),  # an encoder-decoder model keeps one prompt per prefix
        ("tiny_llm", {"train_templates": ["seq-match-1", "seq-point-1"]}, "seq-match-1"),
        ("tiny_llm", {"task_form": "T3"}, "seq-rerank-1"),
        ("tiny_llm", {"eval_template": "seq-match-1"}, "seq-match-1"),
    ],
)
def test_an_unset_eval_template_is_the_running_list_where_it_can_train(
    request, llm, settings, expected
):
    """``eval_template: ~``: the running list for a causal LM with its own templates, the
    paper's one prompt per prefix otherwise; the model names what was used (a checkpoint keeps
    it as its own field), and RecBole's config keeps what the user gave."""
    given = settings.get("eval_template")
    settings = {"eval_template": None, **settings}
    model, train = _model(request.getfixturevalue(llm), **settings)
    assert model.prompts.template.id == expected
    assert model.running_list == (expected == "seq-list")
    assert model.resolved_settings() == {"eval_template": model.eval_template}
    assert model.eval_template in (expected, "seq-match-1")  # with task_form: its template
    assert train.config["eval_template"] == given


@pytest.mark.parametrize("template", ["seq-list", "seq-match-1"])
def test_the_model_counts_the_signals_it_trains(tiny_llm, template):
    """One signal per running-list position (every item after a window's first), one per
    prompt in the instruction layout: what the trainer logs and a checkpoint records."""
    from recbole_instructrec.model.instructrec import _histories

    model, train = _model(tiny_llm, eval_template=template)
    batch = next(iter(train))
    histories = _histories(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    positives = batch[model.POS_ITEM_ID].tolist()
    if template == "seq-list":
        windows = [h[-model.max_history_items :] + [p] for h, p in zip(histories, positives)]
        expected = sum(len(w) - 1 for w in windows)
        assert expected > len(windows)  # more than one signal a row
    else:
        expected = len(histories)
    model.train()
    model.calculate_loss(batch)
    assert model.training_signals == expected


def test_lists_without_negatives_score_every_prefix_exactly(float64_model):
    """``train_negatives: 0`` runs plain causal attention over right-padded lists of different
    lengths; every position still scores as its prefix alone."""
    model = float64_model
    builder = model.prompts
    rows = [builder.training_row(list(range(1, 12))), builder.training_row([3, 5, 7, 9])]
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    with torch.no_grad():
        one_pass = scorer.score_running_lists(rows, [[[]] * len(r.cuts) for r in rows])
        alone = [s for r in rows for s in _per_prefix(scorer, r, [[]] * len(r.cuts))]
    assert len(one_pass.logprob_sums) == 10 + 3
    for got, expected in zip(one_pass.logprob_sums, alone):
        assert torch.allclose(got, expected, atol=1e-9, rtol=0)


def test_the_causal_path_would_leak_with_negatives(float64_model, monkeypatch):
    """The counterpart: plain causal attention is only exact without negatives; forced on
    rows with negatives, a negative reads the list after its prefix and the scores move."""
    model = float64_model
    _, row, negatives = _row_and_negatives(model, list(range(1, 12)))
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    monkeypatch.setattr(
        ContinuationScorer, "_decoder_hidden", lambda self, q, p, cache=None: self._causal_hidden(q)
    )
    with torch.no_grad():
        forced = scorer.score_running_lists([row], [negatives]).logprob_sums
    monkeypatch.undo()
    with torch.no_grad():
        alone = _per_prefix(scorer, row, negatives)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(forced, alone))


@pytest.mark.parametrize("template", ["seq-list", "seq-match-1"])
def test_no_negatives_train_the_generation_loss_alone(tiny_llm, template):
    """``train_negatives: 0``: the loss is minus the positives' mean per-token log-likelihood
    (the paper's objective), in both layouts."""
    from recbole_instructrec.model.instructrec import _histories

    model, train = _model(tiny_llm, eval_template=template, train_negatives=0)
    model.llm.double()
    batch = next(iter(train))[:3]
    histories = _histories(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    positives = batch[model.POS_ITEM_ID].tolist()
    model.train()
    loss = model.calculate_loss(batch)
    loss.backward()
    expected = []
    with torch.no_grad():
        for h, p in zip(histories, positives):
            if template == "seq-list":
                row = model.prompts.training_row(h[-model.max_history_items :] + [p])
                pairs = [(row.ids[:c], row.ids[c : c + n]) for c, n in zip(row.cuts, row.lengths)]
            else:
                ((prefix, (answer,)),) = model.prompts.plan(h, [p]).requests
                pairs = [(prefix, answer)]
            for prefix, answer in pairs:
                (s,) = model.scorer.score([prefix], [[answer]]).logprob_sums
                expected.append(s[0] / len(answer))
    assert torch.allclose(loss, -torch.stack(expected).mean(), atol=1e-9)
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora" in n)


def test_no_negatives_need_a_generation_template(tiny_llm):
    with pytest.raises(ValueError, match=r"train_negatives=0 .*\['seq-point-1'\]"):
        _model(tiny_llm, eval_template="seq-point-1", train_negatives=0)


def test_negatives_at_some_positions_score_every_prefix_exactly(float64_model):
    """Positions without negatives (``train_negative_positions``) leave the others' scores
    exactly what evaluation computes for their prefixes."""
    model = float64_model
    _, row, negatives = _row_and_negatives(model, list(range(1, 12)))
    some = [negs if k in (2, 7) else [] for k, negs in enumerate(negatives)]
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    with torch.no_grad():
        one_pass = scorer.score_running_lists([row, row], [negatives, some]).logprob_sums
        alone = _per_prefix(scorer, row, negatives) + _per_prefix(scorer, row, some)
    assert [len(s) for s in one_pass[10:]] == [1, 1, 4, 1, 1, 1, 1, 4, 1, 1]
    for got, expected in zip(one_pass, alone):
        assert torch.allclose(got, expected, atol=1e-9, rtol=0)


def test_negatives_at_some_positions_train_both_losses(tiny_llm, monkeypatch):
    """``train_negative_positions: 2``: the listwise term over exactly two positions a row, the
    generation term over every position, each score as evaluation computes it."""
    import torch.nn.functional as F

    from recbole_instructrec.model.instructrec import _histories

    model, train = _model(tiny_llm, train_negatives=3, train_negative_positions=2)
    model.llm.double()
    batch = next(iter(train))[:3]
    seen = {}
    original = model.scorer.score_running_lists

    def spy(rows, negatives):
        seen.update(rows=rows, negatives=negatives)
        return original(rows, negatives)

    monkeypatch.setattr(model.scorer, "score_running_lists", spy)
    model.train()
    loss = model.calculate_loss(batch)
    assert len(_histories(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])) == 3
    ranked, generation = [], []
    with torch.no_grad():
        for row, negatives in zip(seen["rows"], seen["negatives"]):
            assert sum(1 for n in negatives if n) == min(2, len(row.cuts))
            for k, s in enumerate(_per_prefix(model.scorer, row, negatives)):
                lengths = [row.lengths[k]] + [len(t) for t in negatives[k]]
                per_token = s / torch.tensor(lengths, dtype=s.dtype)
                generation.append(per_token[0])
                if len(s) > 1:
                    ranked.append(per_token)
        scores = torch.stack(ranked) / model.ranking_temperature
        target = torch.zeros(len(ranked), dtype=torch.long)
        expected = (
            F.cross_entropy(scores, target) - model.lm_loss_weight * torch.stack(generation).mean()
        )
    assert torch.allclose(loss, expected, atol=1e-9)
    assert model.training_signals == len(generation)  # every position is a signal


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"train_negative_positions": 0}, r"train_negative_positions=0 must be an integer"),
        ({"train_negative_positions": "half"}, r"train_negative_positions='half' must be an"),
        (
            {"train_negative_positions": 2, "eval_template": "seq-match-1"},
            r"train_negative_positions=2 picks positions of a running list",
        ),
        (
            {"train_negative_positions": 2, "train_negatives": 0},
            r"train_negative_positions=2 places negatives, and train_negatives=0",
        ),
    ],
)
def test_negative_positions_are_checked(tiny_llm, settings, message):
    with pytest.raises(ValueError, match=message):
        _model(tiny_llm, **settings)


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, 2),  # the default: negatives at 2 positions of a running-list row
        ({"train_negative_positions": "all"}, None),  # every position
        ({"train_negative_positions": 5}, 5),
        # where positions mean nothing, the default does not refuse; it is just not used
        ({"eval_template": "seq-match-1"}, None),
        ({"eval_template": "seq-match-1", "train_negative_positions": "all"}, None),
        ({"train_negatives": 0}, None),
    ],
)
def test_negative_positions_default_to_two_where_they_apply(tiny_llm, settings, expected):
    model, _ = _model(tiny_llm, **{"train_negatives": 3, **settings})
    assert model.train_negative_positions == expected


def test_all_positions_get_negatives_when_asked(tiny_llm, monkeypatch):
    """``train_negative_positions: all`` keeps the negatives at every position; the default
    empties all but two of a row's."""
    counts = {}
    for value in ("all", None):
        model, train = _model(tiny_llm, train_negatives=3, train_negative_positions=value)
        seen = []

        def spy(rows, negatives, seen=seen, original=model.scorer.score_running_lists):
            seen.append((rows, negatives))
            return original(rows, negatives)

        monkeypatch.setattr(model.scorer, "score_running_lists", spy)
        model.train()
        model.calculate_loss(next(iter(train)))
        ((rows, negatives),) = seen
        counts[value] = [(sum(1 for n in row if n), len(r.cuts)) for r, row in zip(rows, negatives)]
    assert all(with_negatives == cuts for with_negatives, cuts in counts["all"])
    assert all(with_negatives == min(2, cuts) for with_negatives, cuts in counts[None])
    assert any(cuts > 2 for _, cuts in counts[None])
