"""Search tasks in the running list: a request after the list, trained in the same pass as the
sequential signals, and the target read only where a search task asks for it."""

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from conftest import DATASET_DIR
from recbole_instructrec import InstructRec
from recbole_instructrec.model import running_list_loss as rll
from recbole_instructrec.prompts import intentions
from recbole_instructrec.prompts.intentions import IntentionSource, load_vague_table
from recbole_instructrec.prompts.templates import TemplateError, load_templates
from recbole_instructrec.scoring.continuation import ContinuationScorer

SEARCH = ["psearch-list", "vague-list", "explicit-list", "search-list"]


def _model(llm_path, **settings):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict={"data_path": DATASET_DIR, "llm_path": llm_path, **settings},
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), train


@pytest.fixture(scope="module")
def float64_model(tiny_llm):
    model, _ = _model(
        tiny_llm,
        train_negatives=3,
        train_request_templates=SEARCH,
        train_request_share=0.5,
        item_text_categories=True,
    )
    model.llm.double().eval()
    return model


def test_a_search_prompt_is_the_sequential_prompt_plus_a_request(float64_model):
    model = float64_model
    history, target = [1, 2, 3, 4], 5
    sequential = model._builder(model.templates["seq-list"]).plan(history, [6], target=target)
    search = model._builder(model.templates["psearch-list"])
    plan = search.plan(history, [6], target=target)
    (seq_prefix, _), (search_prefix, _) = sequential.requests[0], plan.requests[0]
    assert search_prefix[: len(seq_prefix)] == seq_prefix
    request = search_prefix[len(seq_prefix) :]
    words = model.intentions.specific(target)
    assert request == search.request_ids(intention=words)
    assert words in search.render(history, intention=words)
    # product search (P0) reads no history: the same prefix whatever the history
    product = model._builder(model.templates["search-list"])
    assert (
        product.plan(history, [6], target=target).requests[0][0]
        == product.plan([7, 8], [6], target=target).requests[0][0]
    )


@pytest.mark.parametrize("template", SEARCH)
def test_every_position_of_a_request_row_equals_scoring_that_prefix_alone(float64_model, template):
    model = float64_model
    builder = model._builder(model.templates[template])
    window = list(range(1, 9))
    slots = intentions.request_slots(
        model.intentions, builder.template, window[:-1], window[-1], draw=7
    )
    row = builder.training_row(window, **slots)
    negatives = [[builder.piece(n) for n in (9, 10)] for _ in row.cuts]
    scorer = ContinuationScorer(model.llm, max_batch_tokens=100_000)
    with torch.no_grad():
        one_pass = scorer.score_running_lists([row], [negatives]).logprob_sums
        prompts = [row.ids[:cut] for cut in row.cuts]
        conts = [[row.ids[c : c + n]] + ns for c, n, ns in zip(row.cuts, row.lengths, negatives)]
        alone = scorer.score(prompts, conts).logprob_sums
    for got, expected in zip(one_pass, alone):
        assert torch.allclose(got, expected, atol=1e-9, rtol=0)
    # the last prefix is the one evaluation builds for the search task, with the same words
    last = builder.plan(window[:-1], [window[-1]], target=window[-1])
    ((prefix, (answer,)),) = last.requests
    if template != "vague-list":  # evaluation words a vague wish by its own draw
        assert prefix == row.ids[: row.cuts[-1]]
    assert answer == row.ids[row.cuts[-1] :]
    # the positions before it are the sequential ones, unchanged
    plain = model._builder(model.templates["seq-list"]).training_row(window)
    if builder.reads_history:
        assert row.cuts[:-1] == plain.cuts[:-1] and row.items == plain.items
    else:
        assert len(row.cuts) == 1


def _sequential_row_leaks(model, row):
    """True when a row that claims to be sequential is not exactly the plain list."""
    plain = model._builder(model.templates["seq-list"]).training_row(
        row.histories[-1] + [row.items[-1]]
    )
    return row.ids != plain.ids


def test_the_target_reaches_only_search_rows(float64_model, monkeypatch):
    model = float64_model
    targets_read = []
    original = intentions.request_slots

    def spy(source, template, *args, **kwargs):
        targets_read.append(template.id)
        return original(source, template, *args, **kwargs)

    monkeypatch.setattr(intentions, "request_slots", spy)
    rows = []
    monkeypatch.setattr(
        model.scorer,
        "score_running_lists",
        lambda r, n: rows.extend(r) or _fake_scores(r, n),
    )
    histories = [[1, 2, 3, 4, 5], [2, 3, 4], [6, 7, 8, 9], [1, 3, 5, 7]] * 4
    positives = [6, 5, 10, 9] * 4
    rll.running_list_loss(
        model.row_source, model.scorer, model.likelihood_loss, histories, positives
    )
    requested = [row for row in rows if row.requested]
    sequential = [row for row in rows if not row.requested]
    assert requested and sequential  # a share of 0.5 gives both
    assert len(targets_read) == len(requested)
    assert not any(_sequential_row_leaks(model, row) for row in sequential)
    # evaluation of the sequential task never builds a request
    targets_read.clear()
    model._builder(model.templates["seq-list"]).plan([1, 2, 3], [4, 5], target=4)
    assert targets_read == []


def test_the_leak_check_catches_a_request_in_a_sequential_row(float64_model):
    """The check above fails on a deliberately broken row: a request that reaches a row marked
    sequential."""
    model = float64_model
    search = model._builder(model.templates["psearch-list"])
    window = [1, 2, 3, 4, 5]
    broken = search.training_row(window, intention=model.intentions.specific(5))
    assert not broken.requested
    assert _sequential_row_leaks(model, broken)


def _fake_scores(rows, negatives):
    from recbole_instructrec.scoring.continuation import ContinuationScores

    sums, counts = [], []
    for row, negs in zip(rows, negatives):
        for k in range(len(row.cuts)):
            n = 1 + len(negs[k])
            sums.append(torch.zeros(n, requires_grad=True))
            counts.append(torch.ones(n))
    return ContinuationScores(sums, counts)


def test_request_rows_keep_negatives_at_their_search_position(float64_model):
    model = float64_model
    builder = model._builder(model.templates["psearch-list"])
    row = builder.training_row([1, 2, 3, 4, 5, 6], intention="Horror")
    row.requested = True
    for _ in range(10):
        (negatives,) = model.likelihood_loss.draw([row])
        assert negatives[-1], "the search position lost its negatives"
        assert sum(bool(n) for n in negatives) == 2  # train_negative_positions' default


def test_held_out_phrasings_are_never_drawn_in_training():
    table = load_vague_table()
    categories = [[], ["Horror", "Thriller"], ["Comedy"]]
    source = IntentionSource(categories, table)
    vague = load_templates()["vague-list"]
    held_out = {p for ph in table.values() for p in ph.held_out}
    drawn = {
        intentions.request_slots(source, vague, [], target, draw=d)["intention"]
        for target in (1, 2)
        for d in range(200)
    }
    assert drawn and not drawn & held_out
    assert {"something scary", "a suspenseful film", "a funny film"} <= drawn
    evaluated = {source.vague(target, d, held_out=True) for target in (1, 2) for d in range(50)}
    assert evaluated == {
        "something to watch with the lights off",
        "something full of suspense",
        "a good laugh",
    }


def test_a_bad_vague_table_entry_is_named(tmp_path):
    path = tmp_path / "vague.yaml"
    path.write_text("Horror: {held_out: [boo]}\n")
    with pytest.raises(intentions.IntentionError, match="'Horror'.*trained"):
        load_vague_table(str(path))


def test_item_text_names_its_categories(tiny_llm):
    model, _ = _model(tiny_llm, item_text_categories=True)
    texts = dict(zip(model.texts, range(len(model.texts))))
    assert "Cursed Harbor (1982), Horror" in texts


def test_the_defaults_train_the_search_tasks_where_the_data_has_categories(tiny_llm):
    """~ resolves per dataset: with a category field, the four search templates on half the
    rows and categories in the item text; ``train_request_share: 0`` or
    ``train_request_templates: []`` turns the requests off, and the instruction layout has none."""
    model, _ = _model(tiny_llm)
    assert [t.id for t in model.request_templates] == SEARCH
    assert model.request_share == 0.5
    assert "Cursed Harbor (1982), Horror" in model.texts
    for off in ({"train_request_share": 0}, {"train_request_templates": []}):
        model, _ = _model(tiny_llm, **off)
        assert (model.request_templates, model.request_share) == ([], 0.0)
    model, _ = _model(tiny_llm, eval_template="seq-match-1")
    assert (model.request_templates, model.request_share) == ([], 0.0)
    model, _ = _model(tiny_llm, item_text_categories=False)
    assert "Cursed Harbor (1982)" in model.texts


def test_the_defaults_leave_a_dataset_without_categories_alone(tiny_llm):
    from recbole_instructrec.model import settings

    templates = load_templates(None)
    config = {"train_request_templates": None, "train_request_share": None}
    assert settings.request_templates(config, templates, True, has_categories=False) == ([], 0.0)
    assert settings.text_categories({"item_text_categories": None}, None) is False
    chosen, share = settings.request_templates(config, templates, True, has_categories=True)
    assert ([t.id for t in chosen], share) == (SEARCH, 0.5)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"train_request_templates": ["seq-list"], "train_request_share": 0.5}, "no request"),
        ({"train_request_templates": SEARCH, "train_request_share": 2}, "from 0 to 1"),
        (
            {"train_request_templates": [], "train_request_share": 0.5},
            "train_request_templates is empty",
        ),
        ({"item_text_categories": "yes"}, "item_text_categories='yes'"),
        (
            {
                "eval_template": "seq-match-1",
                "train_request_templates": SEARCH,
                "train_request_share": 0.5,
            },
            "instruction layout",
        ),
        ({"valid_templates": ["seq-list", "seq-match-1"]}, "valid_templates names"),
        ({"valid_templates": []}, "valid_templates=\\[\\] must be"),
    ],
)
def test_request_settings_are_checked(tiny_llm, settings, message):
    with pytest.raises(ValueError, match=message):
        _model(tiny_llm, **settings)


def test_a_request_outside_the_running_list_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "templates:\n  - {id: x, preference: P1, intention: I2, task_form: T2,"
        " instruction: 'h {history}', request: 'want {intention}'}\n"
    )
    with pytest.raises(TemplateError, match="only the running_list layout"):
        load_templates(str(path))


# ------------------------------------------------------------------ the category rule
def _broken_rule_by_shared_words(candidate_categories, wanted, tie_scores):
    """A plausible wrong rule: counts shared words instead of the Jaccard overlap, so a
    candidate with many categories beats the one that matches the request exactly."""
    import numpy as np

    tie = np.asarray(tie_scores, dtype=float)
    return np.array(
        [
            [
                len(set(c) & set(w)) + 1e-3 * (t.argsort().argsort()[k] / len(t))
                for k, c in enumerate(cs)
            ]
            for cs, w, t in zip(candidate_categories, wanted, tie)
        ]
    )


RULE_CASE = dict(
    # user 0 asks for Horror, Thriller: the exact match (c) must come first, then the
    # half-match with the better SASRec score (a over b), then the broad one (d), then none (e)
    candidate_categories=[
        [
            ["Horror"],
            ["Horror"],
            ["Horror", "Thriller"],
            ["Horror", "Thriller", "Drama", "War"],
            [],
        ],
        # user 1 asks for nothing (a vague wish): SASRec's order, its tie kept a tie
        [["Comedy"], ["Drama"], ["War"], ["Horror"], ["Drama"]],
    ],
    wanted=[["Horror", "Thriller"], []],
    tie_scores=[[0.9, 0.1, 0.5, 3.0, 5.0], [0.2, 0.7, 0.7, 0.1, 0.3]],
)


def _orders(scores):
    import numpy as np

    return [list(np.argsort(-np.asarray(s), kind="stable")) for s in scores]


def test_the_category_rule_ranks_by_overlap_then_sasrec():
    from recbole_instructrec.bench.instruction_tasks import category_rule_scores
    from recbole_instructrec.scoring.ranking import positive_ranks

    scores = category_rule_scores(**RULE_CASE)
    assert _orders(scores)[0] == [2, 3, 0, 1, 4]
    assert _orders(scores)[1][:3] in ([1, 2, 4], [2, 1, 4])
    assert scores[1][1] == scores[1][2]  # SASRec's tie stays a tie: no side is favoured
    # the one ranking rule counts that tie against the positive
    assert positive_ranks([[scores[1][1], scores[1][2]]])[0] == 1


def test_the_rule_check_catches_a_rule_that_counts_shared_words():
    scores = _broken_rule_by_shared_words(**RULE_CASE)
    assert _orders(scores)[0] != [2, 3, 0, 1, 4]


def test_the_rule_reads_words_only_where_the_task_names_them():
    from recbole_instructrec.bench.instruction_tasks import rule_scores_from_records

    records = [{"user": "u", "items": ["1", "2", "3"], "scores": [0.1, 0.9, 0.5]}]
    categories = {"1": ["Horror"], "2": ["Comedy"], "3": ["Horror", "War"]}
    specific = rule_scores_from_records(records, categories, reads_words=True)[0]["scores"]
    vague = rule_scores_from_records(records, categories, reads_words=False)[0]["scores"]
    assert _orders([specific])[0] == [0, 2, 1]  # the target's own words put it first
    assert _orders([vague])[0] == [1, 2, 0]  # SASRec's order


def test_bench_scores_every_task_on_the_same_candidates(tmp_path, tiny_llm):
    from recbole_instructrec.bench import run_benchmark
    from recbole_instructrec.bench.instruction_tasks import TASKS

    records = run_benchmark(
        datasets=["tiny"],
        models=["SASRec", "InstructRec-zeroshot"],
        data_path=DATASET_DIR,
        model_settings={"SASRec": {"epochs": 1}},
        common_settings={"llm_path": tiny_llm, "eval_batch_size": 50},
        out_dir=str(tmp_path),
        tag="tiny-tasks",
        tasks=list(TASKS),
    )
    by = {(r["model"], r["task"]): r for r in records}
    assert {task for _, task in by} == set(TASKS)
    assert len({r["candidates_sha256"] for r in records}) == 1
    for task in TASKS:
        assert (tmp_path / f"bench-tiny-tasks-{task}.md").exists()
        # SASRec reads no instruction: one scoring serves every task
        assert by[("SASRec", task)]["metrics"] == by[("SASRec", "sequential")]["metrics"]
        assert ("CategoryRule", task) in by
    # where the rule has no words it is SASRec's order; where it reads them it differs
    assert (
        by[("CategoryRule", "psearch-vague")]["metrics"] == by[("SASRec", "sequential")]["metrics"]
    )
    rule, sasrec = by[("CategoryRule", "psearch-specific")], by[("SASRec", "sequential")]
    assert rule["metrics"]["hit@1"] > sasrec["metrics"]["hit@1"] + 0.1
    # the LLM's scores differ between instructions: the request reaches the prompt
    llm = [by[("InstructRec-zeroshot", t)]["scores_file"] for t in TASKS]
    assert len(set(llm)) == len(TASKS)


def test_validation_averages_the_listed_tasks(tiny_llm, monkeypatch):
    """``valid_templates``: the validation score is the mean of each task's own validation,
    and the evaluation template is back afterwards. A validation that ignores the list (the
    prompt never switched) scores the first task alone, and the check catches it."""
    from recbole.trainer import Trainer

    from recbole_instructrec.trainer.trainer import InstructRecTrainer

    tasks = ["seq-list", "psearch-list"]
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict={
            "data_path": DATASET_DIR,
            "llm_path": tiny_llm,
            "valid_templates": tasks,
            "valid_max_users": None,
        },
    )
    init_seed(config["seed"], True)
    _, valid, _ = data_preparation(config, create_dataset(config))
    model = InstructRec(config, valid._dataset)
    trainer = InstructRecTrainer(config, model)
    prompts = model.prompts
    # RecBole draws validation negatives at each evaluation: every scoring here starts from
    # one random state, as every task inside one validation does
    draw = (np.random.get_state(), torch.get_rng_state())

    def same_draw():
        np.random.set_state(draw[0])
        torch.set_rng_state(draw[1])

    alone = []
    for template in tasks:
        same_draw()
        model.use_eval_template(template)
        alone.append(Trainer._valid_epoch(trainer, valid)[0])
    model.prompts = prompts
    same_draw()
    assert alone[0] != pytest.approx(alone[1])  # the tasks score apart on this data

    score, result = trainer._valid_epoch(valid)
    assert score == pytest.approx(sum(alone) / len(alone))
    assert result["psearch-list ndcg@5"] == pytest.approx(alone[1])
    assert model.prompts is prompts

    monkeypatch.setattr(model, "use_eval_template", lambda *args, **kwargs: None)
    same_draw()
    ignored, _ = trainer._valid_epoch(valid)
    assert ignored != pytest.approx(score)
