"""The item head (score_head: items): every position of a training row reads the state that
evaluation reads for that prefix, the whole catalogue is scored from one position, and the
head is trained, saved and served."""

import os

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import DATASET_DIR, tiny_config
from recbole_instructrec import InstructRec
from recbole_instructrec.model.running_list_loss import item_head_loss
from recbole_instructrec.scoring import item_head


def _model(llm_path, cache, **settings):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict={
            "data_path": DATASET_DIR,
            "llm_path": llm_path,
            "llm_cache_dir": str(cache),
            "score_head": "items",
            **settings,
        },
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    return InstructRec(config, train._dataset), train


@pytest.fixture(scope="module")
def float64_model(tiny_llm, tmp_path_factory):
    model, _ = _model(tiny_llm, tmp_path_factory.mktemp("cache"), train_request_share=0)
    model.double().eval()
    with torch.no_grad():  # a head that is not at its zero start, so every part is checked
        model.item_head.item_learned.normal_()
    return model


def _row_states(model, window):
    row = model.prompts.training_row(window)
    states, _, _ = model.scorer.states_before([row.ids], [row.cuts])
    return row, states[0]


def _assert_each_position_scores_as_evaluation(model, row, states):
    """Every position's item head logits equal evaluation's scores of that prefix, whose
    prompt is the row up to that position."""
    with torch.no_grad():
        trained = model.item_head(states)
        for k, history in enumerate(row.histories):
            plan = model.prompts.plan(history, list(range(1, model.n_items)))
            assert plan.requests[0][0] == row.ids[: row.cuts[k]]
            scores, _, _ = model._score_plans([plan], model.scorer)[0]
            assert torch.allclose(scores, trained[k, 1:], atol=1e-10)


def test_every_position_reads_the_state_evaluation_reads(float64_model):
    model = float64_model
    window = [3, 1, 4, 5, 9, 2, 6]
    row, states = _row_states(model, window)
    assert len(row.cuts) == len(window) - 1
    _assert_each_position_scores_as_evaluation(model, row, states)


def test_the_check_catches_a_state_read_one_position_late(float64_model):
    """The failing counterpart: the state at the first token of the item (which has seen that
    token) is not the state evaluation reads."""
    model = float64_model
    row = model.prompts.training_row([3, 1, 4, 5])
    late, _, _ = model.scorer.states_before([row.ids], [[c + 1 for c in row.cuts]])
    right, _, _ = model.scorer.states_before([row.ids], [row.cuts])
    with torch.no_grad():
        assert not torch.allclose(model.item_head(late[0]), model.item_head(right[0]), atol=1e-6)


def test_the_generation_term_is_the_likelihood_heads(float64_model):
    """With lm_loss_weight, the positives' log-probs come from the same pass and equal the
    likelihood head's scores of those continuations."""
    model = float64_model
    row = model.prompts.training_row([3, 1, 4, 5, 9])
    _, sums, _ = model.scorer.states_before([row.ids], [row.cuts], [row.lengths])
    for k, cut in enumerate(row.cuts):
        continuation = row.ids[cut : cut + row.lengths[k]]
        expected = model.scorer.score([row.ids[:cut]], [[continuation]]).logprob_sums[0][0]
        assert torch.allclose(sums[0][k], expected, atol=1e-9)


def test_the_loss_is_a_softmax_over_the_catalogue_at_every_position(tiny_llm, tmp_path):
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0, lm_loss_weight=0)
    histories, positives = [[3, 1, 4, 5], [2, 6]], [9, 7]
    loss, signals = item_head_loss(
        model.row_source, model.scorer, model.item_head, histories, positives
    )
    assert signals == 4 + 2  # every item after a row's first
    rows = [model.prompts.training_row(h + [p]) for h, p in zip(histories, positives)]
    states, _, _ = model.scorer.states_before([r.ids for r in rows], [r.cuts for r in rows])
    logits = model.item_head(torch.cat(states))
    targets = torch.tensor([i for r in rows for i in r.items])
    expected = torch.nn.functional.cross_entropy(logits, targets)
    assert torch.allclose(loss, expected)
    assert logits.shape[1] == model.n_items and torch.isinf(logits[:, 0]).all()


def test_the_search_signals_weigh_as_a_task_of_their_own(tiny_llm, tmp_path):
    """Request rows: the loss is the sequential signals' mean plus train_request_weight times
    the search signals' mean; the failing counterpart, one mean over every signal, is another
    number. A negative weight is refused by name."""
    model, _ = _model(
        tiny_llm, tmp_path, train_request_share=1.0, lm_loss_weight=0, train_request_weight=0.5
    )
    histories, positives = [[3, 1, 4, 5], [2, 6, 8]], [9, 7]
    loss, rows = _loss_and_its_rows(
        model, histories, positives, request_weight=model.request_weight
    )
    assert all(row.requested for row in rows)
    states, _, _ = model.scorer.states_before([r.ids for r in rows], [r.cuts for r in rows])
    targets = torch.tensor([i for r in rows for i in r.items])
    each = torch.nn.functional.cross_entropy(
        model.item_head(torch.cat(states)), targets, reduction="none"
    )
    search = _search_positions(rows)
    assert bool((~search).any())
    assert torch.allclose(loss, each[~search].mean() + 0.5 * each[search].mean())
    assert not torch.allclose(loss, each.mean())
    with pytest.raises(ValueError, match="train_request_weight=-1"):
        _model(tiny_llm, tmp_path, train_request_weight=-1)


def _loss_and_its_rows(model, histories, positives, **options):
    """item_head_loss of the rows, and the same rows drawn again (the generators rewound)."""
    drawn = (model.template_generator.get_state(), model.request_generator.get_state())
    loss, _ = item_head_loss(
        model.row_source, model.scorer, model.item_head, histories, positives, **options
    )
    model.template_generator.set_state(drawn[0])
    model.request_generator.set_state(drawn[1])
    return loss, model.row_source.rows(histories, positives)[1]


def _search_positions(rows):
    """True at each row's last position (a request row's search signal), over all rows."""
    ends = torch.cumsum(torch.tensor([len(r.items) for r in rows]), 0) - 1
    search = torch.zeros(int(ends[-1]) + 1, dtype=torch.bool)
    search[ends] = True
    return search


def test_text_vectors_are_cached_per_llm_and_catalogue(tiny_llm, tmp_path):
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0)
    files = os.listdir(tmp_path / "item-text-vectors")
    assert len(files) == 1
    vectors = model.item_head.text_vectors
    assert vectors[0].abs().sum() == 0 and (vectors[1:].abs().sum(1) > 0).all()
    # every item has its own vector from its text, trained or not
    assert torch.unique(vectors[1:], dim=0).shape[0] == vectors.shape[0] - 1
    again = item_head.text_vectors(
        model.llm, model.tokenizer, model.texts, model.llm_identity, str(tmp_path)
    )
    assert torch.equal(again, vectors)
    assert os.listdir(tmp_path / "item-text-vectors") == files
    other = item_head.text_vectors(
        model.llm, model.tokenizer, model.texts[:-1], model.llm_identity, str(tmp_path)
    )
    assert len(os.listdir(tmp_path / "item-text-vectors")) == 2
    assert other.shape[0] == len(model.texts) - 1


def _each_alone(model, texts, ignore_padding=False):
    """Each text's mean state read on its own (``ignore_padding``: as one batch, averaged over
    the padding too, the bug that sorting by length would hide)."""
    decoder = model.llm.get_base_model().get_decoder()
    ids = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if ignore_padding:
        longest = max(map(len, ids))
        batch = torch.tensor([i + [0] * (longest - len(i)) for i in ids])
        return decoder(input_ids=batch).last_hidden_state.mean(1)
    return torch.stack(
        [decoder(input_ids=torch.tensor([i])).last_hidden_state[0].mean(0) for i in ids]
    )


def test_text_vectors_read_in_length_batches_equal_each_text_read_alone(float64_model):
    model = float64_model
    texts = ["", *model.texts[1:]]
    lengths = {len(model.tokenizer(t)["input_ids"]) for t in texts[1:]}
    assert len(lengths) > 1  # padding happens
    with torch.no_grad(), model.llm.disable_adapter():
        batched = item_head.standardised(
            item_head._mean_states(model.llm.get_base_model(), model.tokenizer, texts, 64)
        )
        alone = _each_alone(model, texts[1:]).float()
        padded = _each_alone(model, texts[1:], ignore_padding=True).float()

    def standardised(vectors):
        return (vectors - vectors.mean(0)) / vectors.std(0).clamp(min=1e-6)

    assert batched[0].abs().sum() == 0
    assert torch.allclose(batched[1:], standardised(alone), atol=1e-4)
    assert not torch.allclose(batched[1:], standardised(padded), atol=1e-4)


def test_the_item_head_needs_the_running_list(tiny_llm, tmp_path):
    with pytest.raises(ValueError, match="score_head=items.*seq-match-1"):
        _model(tiny_llm, tmp_path, eval_template="seq-match-1")
    with pytest.raises(ValueError, match="score_head='vectors'"):
        _model(tiny_llm, tmp_path, score_head="vectors")


@pytest.mark.parametrize("mentions", ["text", "compact", "both", "hybrid"])
def test_run_recbole_trains_the_item_head_and_ranks_everything(
    tmp_path, tiny_llm, mentions, request
):
    """hybrid: compact mentions from SASRec's item tokens, and its embeddings in the head."""
    from recbole_instructrec.quick_start.recommend import Recommender

    hybrid = {}
    if mentions == "hybrid":
        mentions = "compact"
        hybrid = dict(
            item_id_tokens=True,
            item_head_collab=True,
            collab_model_checkpoint=request.getfixturevalue("sasrec_checkpoint"),
        )
    config = tiny_config(
        tmp_path,
        tiny_llm,
        score_head="items",
        item_mentions=mentions,
        llm_cache_dir=str(tmp_path / "cache"),
        **hybrid,
    )
    result = recbole_instructrec.run_recbole("InstructRec", "tiny", config_dict=config)
    assert 0.0 <= result["test_result"]["hit@1"] <= 1.0
    saved = sorted(p for p in os.listdir(tmp_path / "saved") if "resume" not in p)
    # the checkpoint carries score_head: the recommender is told nothing else of the model
    recommender = Recommender(
        "tiny", str(tmp_path / "saved" / saved[0]), {"llm_cache_dir": str(tmp_path / "cache")}
    )
    learned = recommender.model.item_head.item_learned
    assert learned.abs().sum() > 0  # trained, saved and loaded: no longer its zero start
    if hybrid:
        assert recommender.model.item_head.collab_proj.abs().sum() > 0
    scored = recommender.score(user="u1")
    ranked = recommender.rank(scored, len(scored.pool))
    assert len(ranked.items) == len(scored.pool)
    # full ranking: one position a user, every item's logit, the padding item never first
    model = recommender.model
    interaction = recommender._history_interaction(recommender.user_history("u1"))
    with torch.no_grad():
        everything = model.full_sort_predict(interaction)
    assert everything.shape == (1, model.n_items) and torch.isinf(everything[0, 0])
    pool = torch.tensor(scored.pool)
    assert torch.allclose(everything[0, pool].float(), scored.llm_scores.float(), atol=1e-5)


@pytest.fixture(scope="module")
def compact_model(tiny_llm, tmp_path_factory):
    model, _ = _model(
        tiny_llm,
        tmp_path_factory.mktemp("cache"),
        train_request_share=0,
        item_mentions="compact",
    )
    model.double().eval()
    with torch.no_grad():
        model.item_head.item_learned.normal_()
    return model


def test_a_compact_mention_is_one_position_read_as_evaluation_reads_it(compact_model):
    model = compact_model
    window = [3, 1, 4, 5, 9, 2, 6]
    row, states = _row_states(model, window)
    first = model.item_tokens.first_item_token
    assert row.ids[len(model.prompts.header) :] == [first + i for i in window]
    assert row.cuts == list(range(len(model.prompts.header) + 1, len(row.ids)))
    _assert_each_position_scores_as_evaluation(model, row, states)


def test_a_compact_mention_is_the_items_projected_text_vector(compact_model):
    """Each item enters as its own text vector through the projector: two items give two
    inputs; the failing counterpart, a table whose rows were swapped, gives another input."""
    model = compact_model
    embed = model.llm.get_input_embeddings()
    first = model.item_tokens.first_item_token
    with torch.no_grad():
        inputs = embed(torch.tensor([[first + 3, first + 4]]))[0]
        expected = model.item_tokens.item_vectors(torch.tensor([3, 4]))
        assert torch.allclose(inputs, expected.to(inputs.dtype))
        assert not torch.allclose(inputs[0], inputs[1])
        swapped = model.item_tokens.item_table.weight[[4, 3]]
        assert torch.equal(swapped[0], model.item_head.text_vectors[4].to(swapped.dtype))
        assert not torch.allclose(
            model.item_tokens.projector(swapped) * model.item_tokens.scale, expected
        )


def test_compact_mentions_need_the_item_head(tiny_llm, tmp_path):
    with pytest.raises(ValueError, match="item_mentions=compact.*score_head: items"):
        _model(tiny_llm, tmp_path, score_head="likelihood", item_mentions="compact")
    with pytest.raises(ValueError, match="item_mentions=both.*score_head: items"):
        _model(tiny_llm, tmp_path, score_head="likelihood", item_mentions="both")


def test_a_both_mention_is_the_item_token_then_its_text(tiny_llm, tmp_path):
    """Each item is its token (the compact input) followed by its text, and every training
    position reads the state evaluation reads; the failing counterpart, a text mention, has no
    item token and reads another state."""
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0, item_mentions="both")
    text, _ = _model(tiny_llm, tmp_path, train_request_share=0)
    model.double().eval()
    text.double().eval()
    window = [3, 1, 4]
    row, states = _row_states(model, window)
    first = model.item_tokens.first_item_token
    pieces = [model.prompts.piece(i) for i in window]
    assert [p[0] for p in pieces] == [first + i for i in window]
    assert [p[1:] for p in pieces] == [text.prompts.piece(i) for i in window]
    assert row.ids[len(model.prompts.header) :] == [t for p in pieces for t in p]
    _assert_each_position_scores_as_evaluation(model, row, states)
    _, text_states = _row_states(text, window)
    assert not torch.allclose(text_states[-1], states[-1])


def test_the_item_head_trains_at_its_own_learning_rate(tiny_llm, tmp_path):
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0, item_head_learning_rate=0.01)
    groups = model.parameter_groups()
    head = {id(p) for p in model.item_head.parameters()}
    assert [g.get("lr") for g in groups] == [None, 0.01]
    assert {id(p) for p in groups[1]["params"]} == head
    assert not head & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) > 0  # the adapters, at learning_rate
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    for wrong in (0, -0.1):
        with pytest.raises(ValueError, match=f"item_head_learning_rate={wrong!r} must be a num"):
            _model(tiny_llm, tmp_path, item_head_learning_rate=wrong)
    with pytest.raises(ValueError, match="item_head_learning_rate='fast' must be float"):
        _model(tiny_llm, tmp_path, item_head_learning_rate="fast")


def test_the_bias_starts_at_the_training_splits_popularity(tiny_llm, tmp_path):
    """The per-item bias starts at the centred log training count of RecBole's training split;
    the failing counterpart, counts of the whole dataset, holds the held-out interactions and
    gives another start."""
    from recbole_instructrec.data.training_counts import target_counts

    model, train = _model(tiny_llm, tmp_path, train_request_share=0)
    counts = target_counts(train._dataset)
    assert torch.allclose(
        model.item_head.item_bias, item_head.popularity_prior(counts, len(counts))
    )
    assert model.item_head.item_bias[0] == 0
    whole = train._dataset.inter_feat  # the split's rows: one per training target
    everything = create_dataset(train._dataset.config).inter_feat[train._dataset.iid_field]
    assert len(everything) > len(whole)
    leaked = torch.bincount(torch.as_tensor(everything), minlength=len(counts))
    assert not torch.allclose(
        model.item_head.item_bias, item_head.popularity_prior(leaked, len(counts))
    )


def test_category_index_holds_each_items_categories():
    index, vocabulary = item_head.category_index([[], ["Horror"], ["Drama", "Horror"]])
    assert vocabulary == ["Drama", "Horror"]
    assert index.tolist() == [[0, 0], [2, 0], [1, 2]]


def test_items_of_a_category_share_its_learned_vector(tiny_llm, tmp_path):
    """Category vectors start at zero (the item vectors are the head's without them); a step
    on one category moves every item of it and no other item."""
    plain, _ = _model(tiny_llm, tmp_path, train_request_share=0)
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0, item_head_categories=True)
    head = model.item_head
    with torch.no_grad():
        assert torch.equal(head.item_vectors(), plain.item_head.item_vectors())
        horror = head.categories.index("Horror") + 1
        head.category_vectors.weight[horror] = 1.0
        moved = (head.item_vectors() - plain.item_head.item_vectors()).abs().sum(1) > 0
    expected = torch.tensor(["Horror" in words for words in model.intentions.categories])
    assert bool(expected.any()) and not bool(expected.all())
    assert torch.equal(moved, expected)
    # the failing counterpart: an index one category off moves other items
    shifted = head.category_index.roll(1, dims=0)
    off = head.category_vectors(shifted).abs().sum((1, 2)) > 0
    assert not torch.equal(off, expected)
    assert {id(p) for p in head.category_vectors.parameters()} <= {
        id(p) for p in model.parameter_groups()[1]["params"]
    }


def test_category_vectors_need_the_item_head_and_categories(tiny_llm, tmp_path):
    with pytest.raises(ValueError, match="item_head_categories=True.*score_head: items"):
        _model(tiny_llm, tmp_path, score_head="likelihood", item_head_categories=True)
    with pytest.raises(ValueError, match="item_head_categories=True needs item categories"):
        _model(
            tiny_llm,
            tmp_path,
            item_head_categories=True,
            load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title"]},
        )
    with pytest.raises(ValueError, match="item_head_categories='yes' must be bool"):
        _model(tiny_llm, tmp_path, item_head_categories="yes")


def test_the_hybrid_item_head_adds_the_projected_collab_embeddings(
    tiny_llm, tmp_path, sasrec_checkpoint
):
    """item_head_collab: the SASRec checkpoint's item embeddings, standardised per dimension,
    through a projection that starts at zero (the item vectors are the head's without it) and
    trains with the item head; the embeddings themselves stay fixed."""
    from recbole_instructrec.scoring.recbole_checkpoint import load_recbole_checkpoint

    plain, _ = _model(tiny_llm, tmp_path, train_request_share=0)
    model, _ = _model(
        tiny_llm,
        tmp_path,
        train_request_share=0,
        item_head_collab=True,
        collab_model_checkpoint=sasrec_checkpoint,
    )
    head = model.item_head
    with torch.no_grad():
        assert torch.equal(head.item_vectors(), plain.item_head.item_vectors())
        projection = torch.randn(head.collab_proj.shape)
        head.collab_proj.copy_(projection)
        added = head.item_vectors() - plain.item_head.item_vectors()
    state = load_recbole_checkpoint(sasrec_checkpoint, map_location="cpu")["state_dict"]
    table = state["item_embedding.weight"][: model.n_items].float()
    expected = item_head.standardised(table) @ projection
    assert torch.allclose(added, expected, atol=1e-4)
    assert torch.equal(added[0], torch.zeros_like(added[0]))  # the padding item stays at zero
    # the failing counterpart: the embeddings of other items (a table one row off)
    assert not torch.allclose(added, item_head.standardised(table.roll(1, dims=0)) @ projection)
    trainable = {id(p) for p in model.parameter_groups()[1]["params"]}
    assert id(head.collab_proj) in trainable
    assert not head.collab_vectors.requires_grad


def test_the_hybrid_item_head_needs_the_item_head_and_a_checkpoint(
    tiny_llm, tmp_path, sasrec_checkpoint
):
    with pytest.raises(ValueError, match="item_head_collab=True.*collab_model_checkpoint"):
        _model(tiny_llm, tmp_path, item_head_collab=True)
    with pytest.raises(ValueError, match="item_head_collab=True.*score_head: items"):
        _model(
            tiny_llm,
            tmp_path,
            score_head="likelihood",
            item_head_collab=True,
            collab_model_checkpoint=sasrec_checkpoint,
        )
    # the checkpoint alone is read by neither hybrid
    with pytest.raises(ValueError, match="item_head_collab: True"):
        _model(tiny_llm, tmp_path, collab_model_checkpoint=sasrec_checkpoint)


@pytest.fixture(scope="module")
def request_model(tiny_llm, tmp_path_factory):
    """Every training row ends with a request; the request readings switched on, then moved
    off their zero start, so every part is checked."""
    model, _ = _model(
        tiny_llm,
        tmp_path_factory.mktemp("cache"),
        train_request_share=1.0,
        lm_loss_weight=0,
        item_head_request_vectors=True,
    )
    model.double().eval()
    with torch.no_grad():
        model.item_head.item_learned.normal_()
    return model


def _move_request_weights(head, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.request_gate.fill_(1.5)
        head.request_proj.copy_(torch.randn(head.request_proj.shape, generator=generator))


def test_request_readings_start_at_zero_and_never_touch_a_row_without_a_request(tiny_llm, tmp_path):
    """At the start the head scores as without request readings, request or not; once they
    have moved, a position with a request scores otherwise and one without scores as before.
    The setting needs the item head, and says so."""
    model, _ = _model(tiny_llm, tmp_path, train_request_share=0, item_head_request_vectors=True)
    head, reader = model.item_head, model.request_reader
    states = torch.randn(3, head.user_norm.normalized_shape[0])
    asked = reader([None, "Horror", ""])
    assert asked[0].abs().sum() == 0 and asked[2].abs().sum() == 0
    assert asked[1].abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(head(states, asked), head(states))
        _move_request_weights(head)
        moved = head(states, asked)
        plain = head(states)
    assert torch.equal(moved[[0, 2]], plain[[0, 2]])
    assert not torch.allclose(moved[1], plain[1])
    trainable = {id(p) for p in model.parameter_groups()[1]["params"]}
    assert {id(head.request_gate), id(head.request_proj)} <= trainable
    with pytest.raises(ValueError, match="item_head_request_vectors=True.*score_head: items"):
        _model(tiny_llm, tmp_path, score_head="likelihood", item_head_request_vectors=True)


def test_a_request_is_read_as_the_item_text_it_repeats(request_model):
    """A request whose words are an item's text lands on that item's text vector: the same
    frozen LM (adapters off), the same standardisation. The failing counterparts: read with
    the adapters on, or standardised with the request's own statistics, it lands elsewhere."""
    model = request_model
    head, reader = model.item_head, model.request_reader
    items = [3, 5, 8]
    texts = [model.texts[i] for i in items]
    read = reader(texts)
    assert torch.allclose(read.double(), head.text_vectors[items].double(), atol=1e-4)
    lora = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    saved = [p.detach().clone() for p in lora]
    with torch.no_grad():
        for p in lora:
            p.normal_()
        adapted = item_head._mean_states(model.llm, model.tokenizer, ["", *texts], 2048)
        for p, before in zip(lora, saved):
            p.copy_(before)
    mean, std = reader.statistics
    assert not torch.allclose(((adapted[1:] - mean) / std).double(), read.double(), atol=1e-2)
    own = item_head.standardised(torch.cat([torch.zeros(1, read.shape[1]), read]))[1:]
    assert not torch.allclose(own.double(), head.text_vectors[items].double(), atol=1e-2)


def test_only_a_request_rows_last_position_reads_the_request(request_model):
    """In the loss, the reading of a row's request reaches its last position (the search
    signal) and no other; the failing counterpart, the request at every position of its row,
    gives another loss. A sequential prompt has no request to read."""
    model = request_model
    _move_request_weights(model.item_head, seed=1)
    histories, positives = [[3, 1, 4, 5], [2, 6, 8]], [9, 7]
    with torch.no_grad():
        loss, rows = _loss_and_its_rows(
            model, histories, positives, request_weight=1.0, reader=model.request_reader
        )
    assert all(row.requested and row.request_text for row in rows)
    states, _, _ = model.scorer.states_before([r.ids for r in rows], [r.cuts for r in rows])
    targets = torch.tensor([i for r in rows for i in r.items])

    def loss_with(asked):
        with torch.no_grad():
            logits = model.item_head(torch.cat(states), model.request_reader(asked))
        each = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        search = _search_positions(rows)
        return each[~search].mean() + each[search].mean()

    at_the_end = [
        r.request_text if k == len(r.items) - 1 else None for r in rows for k in range(len(r.items))
    ]
    everywhere = [r.request_text for r in rows for _ in r.items]
    assert torch.allclose(loss.double(), loss_with(at_the_end).double())
    assert not torch.allclose(loss.double(), loss_with(everywhere).double())
    assert model.prompts.plan([3, 1, 4], [5, 9]).request_text is None
    assert model.prompts.training_row([3, 1, 4, 5]).request_text is None


def test_a_typed_request_is_read_where_it_is_scored(request_model):
    """Scoring a plan of a search template reads its request: the words typed, and nothing
    of the template around them; the same plan scored without a reader scores otherwise."""
    from recbole_instructrec.scoring.item_head import plan_scores

    model = request_model
    _move_request_weights(model.item_head, seed=2)
    builder = model.use_eval_template("vague-list")
    plan = builder.plan([3, 1, 4], list(range(1, model.n_items)), intention="something scary")
    assert plan.request_text == "something scary"
    with torch.no_grad():
        read, _, _ = model._score_plans([plan], model.scorer)[0]
        unread, _, _ = plan_scores(model.item_head, model.scorer, [plan])[0]
    assert not torch.allclose(read, unread)
    model.use_eval_template(model.eval_template)
