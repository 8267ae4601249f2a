"""Baselines train to early stopping, and their record says how many epochs, which was best
and why training stopped."""

import pytest
import torch

import recbole_instructrec  # noqa: F401
from conftest import DATASET_DIR
from recbole_instructrec.bench import comparison, convergence, runner
from recbole_instructrec.scoring.recbole_checkpoint import load_recbole_checkpoint


def _sasrec(tmp_path, **settings):
    from recbole.utils import get_model, get_trainer

    common = runner._common_settings(DATASET_DIR, "uni9", 2020, str(tmp_path), {})
    common.update({**runner.BASELINE_SETTINGS, **settings})
    config, (train, valid, _), _, _ = runner._prepare("SASRec", "tiny", common)
    model = get_model("SASRec")(config, train._dataset)
    return get_trainer(config["MODEL_TYPE"], "SASRec")(config, model), train, valid


def test_early_stopping_is_recorded_with_the_epoch_validation_chose(tmp_path):
    trainer, train, valid = _sasrec(tmp_path, epochs=200, stopping_step=2)
    record = convergence.fit_to_convergence(trainer, train, valid)
    assert record["stop_reason"] == "early stopping"
    assert record["epochs_run"] == len(record["curve"]) < 200
    scores = [p["valid_score"] for p in record["curve"]]
    # RecBole keeps the later of equal scores; the best epoch is the last maximum ...
    best = max(i for i, s in enumerate(scores) if s == max(scores))
    assert record["best_epoch"] == best and record["best_valid_score"] == max(scores)
    # every validation metric is kept beside the score that chose the epoch
    assert record["curve"][best]["valid_result"]["ndcg@5"] == record["best_valid_score"]
    # ... followed by more than stopping_step evaluations without gain.
    assert record["epochs_run"] - 1 - best == 3
    # The checkpoint on disk is the best epoch's.
    saved = load_recbole_checkpoint(trainer.saved_model_file)
    assert saved["epoch"] == best


def test_a_capped_or_timed_out_run_says_so(tmp_path):
    trainer, train, valid = _sasrec(tmp_path, epochs=2, stopping_step=10)
    assert convergence.fit_to_convergence(trainer, train, valid)["stop_reason"] == "epoch limit"
    trainer, train, valid = _sasrec(tmp_path, epochs=50, stopping_step=10)
    record = convergence.fit_to_convergence(trainer, train, valid, time_limit_s=0)
    # The first epoch always runs, so a best checkpoint exists to load.
    assert record["stop_reason"] == "time limit" and record["epochs_run"] == 1
    assert "not converged" in comparison.training_summary({"convergence": record})
    # an InstructRec row's epochs are its budget, and its summary says so
    budget = comparison.training_summary({"convergence": record, "model": "InstructRec"})
    assert budget == "a budget of 1 epoch, best epoch 0"
    # a row that trained nothing says so, and one that trained without validation does not
    # pass for zero-shot
    untrained = {"model": "InstructRec-zeroshot", "recbole_model": "InstructRec"}
    assert comparison.training_summary({**untrained, "training_signals": 0}) == (
        "zero-shot: no training"
    )
    assert "zero-shot" not in comparison.training_summary({**untrained, "training_signals": 5})
    # The trainer is left with its own methods.
    assert "_train_epoch" not in vars(trainer)


def test_autograd_anomaly_mode_is_off_after_import():
    # RecBole's sine.py turns it on at import; it is a large CPU cost on every model.
    assert not torch.is_anomaly_enabled()


@pytest.mark.parametrize("name", ["SASRec-tuned"])
def test_the_tuned_grid_is_literature_settings(name):
    model, _, grid = runner.resolve_model(name)
    assert model == "SASRec"
    assert {p["hidden_dropout_prob"] for p in grid} <= {0.1, 0.2, 0.5}
