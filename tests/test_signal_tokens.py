"""benchmarks/signal_tokens.py counts the tokens the training loss puts through the LLM."""

import pytest

from conftest import benchmark_script, tiny_config
from recbole_instructrec.model.instructrec import _histories
from recbole_instructrec.trainer.trainer import model_and_training_rows


@pytest.mark.parametrize("template", ["seq-match-1", "seq-list"])
def test_counted_tokens_are_the_tokens_the_loss_runs(tmp_path, tiny_llm, template):
    # 4 negatives a signal, pinned: with train_negatives 0 there would be no negatives to count
    settings = tiny_config(
        tmp_path, tiny_llm, eval_template=template, train_batch_size=1, train_negatives=4
    )
    _, model, train = model_and_training_rows("tiny", settings)
    row_tokens = benchmark_script("signal_tokens").row_tokens
    checked = 0
    for interaction in train:
        (history,) = _histories(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        positive = int(interaction[model.POS_ITEM_ID][0])
        states = [g.get_state() for g in (model.negative_generator, model.request_generator)]
        counted = row_tokens(model, history, positive)
        # the loss draws the same requests and negatives
        model.negative_generator.set_state(states[0])
        model.request_generator.set_state(states[1])
        model.scorer.tokens_computed = 0
        model.calculate_loss(interaction)
        # One row per batch: no padding, so every token run is one the count holds.
        assert model.scorer.tokens_computed == counted[:3].sum() > 0
        signals = min(len(history), model.max_history_items) if model.running_list else 1
        assert counted[3] == signals
        checked += 1
        if checked == 5:
            break
    assert checked == 5


def test_a_count_that_forgets_the_negatives_would_not_match(tmp_path, tiny_llm):
    settings = tiny_config(
        tmp_path, tiny_llm, eval_template="seq-list", train_batch_size=1, train_negatives=4
    )
    _, model, train = model_and_training_rows("tiny", settings)
    interaction = next(iter(train))
    (history,) = _histories(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    counted = benchmark_script("signal_tokens").row_tokens(
        model, history, int(interaction[model.POS_ITEM_ID][0])
    )
    model.scorer.tokens_computed = 0
    model.calculate_loss(interaction)
    assert model.scorer.tokens_computed != counted[0] + counted[1]  # negatives left out
