"""End to end on the shipped tiny dataset: training, adapter-only checkpoints, evaluation."""

import os
import re

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed

import recbole_instructrec
from conftest import tiny_config
from recbole_instructrec import InstructRecTrainer
from recbole_instructrec.trainer.checkpoint import CheckpointError, read_checkpoint


def test_end_to_end_run_on_tiny_dataset(tmp_path, tiny_llm):
    result = recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm)
    )
    assert set(result) == {
        "best_valid_score",
        "valid_score_bigger",
        "best_valid_result",
        "test_result",
    }
    test = result["test_result"]
    for key in ("hit@1", "hit@3", "hit@5", "ndcg@3", "ndcg@5", "ndcg@10"):
        assert 0.0 <= test[key] <= 1.0
    assert test["hit@10"] == 1.0  # uni9: ten candidates, so the positive is always in the top 10
    saved = sorted(os.listdir(tmp_path / "saved"))
    assert len(saved) == 2 and all(name.endswith(".safetensors") for name in saved)
    assert sum(name.endswith(".resume.safetensors") for name in saved) == 1  # + the best epoch


def _setup(tmp_path, llm_path, **overrides):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, llm_path, **overrides),
    )
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = get_model("InstructRec")(config, train._dataset)
    return config, model, train, valid, test


def test_only_adapters_train(tmp_path, tiny_llm):
    config, model, *_ = _setup(tmp_path, tiny_llm)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", str(model))
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert f"Trainable parameters: {count}" in shown


def test_adapter_only_checkpoint_round_trip(tmp_path, tiny_llm):
    config, model, train, valid, test = _setup(tmp_path, tiny_llm)
    trainer = InstructRecTrainer(config, model)
    trainer.fit(train, valid, saved=True)
    path = trainer.saved_model_file
    header, tensors = read_checkpoint(path)
    model_tensors = [k for k in tensors if k.startswith("model/")]
    assert model_tensors and all("lora_" in k for k in model_tensors)
    # Adapters and their two Adam moments, nothing of the frozen base model.
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stored = sum(t.numel() for k, t in tensors.items() if not k.startswith("rng/"))
    assert stored == 3 * trainable + len(model_tensors)  # + one Adam step count per tensor
    init_seed(config["seed"], True)  # RecBole re-draws eval negatives from the global RNG
    expected = trainer.evaluate(test, load_best_model=True)

    _, fresh, *_ = _setup(tmp_path, tiny_llm, seed=99)  # different random adapter init
    fresh_trainer = InstructRecTrainer(config, fresh)
    init_seed(config["seed"], True)
    assert fresh_trainer.evaluate(test, load_best_model=True, model_file=path) == expected
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, dict(fresh.named_parameters())[name])


def test_checkpoint_from_another_base_model_is_refused(tmp_path, tiny_llm, tiny_t5):
    config, model, train, valid, test = _setup(tmp_path, tiny_llm)
    trainer = InstructRecTrainer(config, model)
    trainer._save_checkpoint(0, verbose=False)
    t5_config, t5_model, *_ = _setup(tmp_path, tiny_t5)
    with pytest.raises(CheckpointError, match="base LLM"):
        InstructRecTrainer(t5_config, t5_model).load_adapter(trainer.saved_model_file)


def test_resume_restores_epoch_and_optimizer(tmp_path, tiny_llm):
    config, model, train, valid, test = _setup(tmp_path, tiny_llm, epochs=2)
    trainer = InstructRecTrainer(config, model)
    trainer.fit(train, None, saved=True)  # no validation: a checkpoint every epoch
    _, resumed_model, *_ = _setup(tmp_path, tiny_llm, epochs=2)
    resumed = InstructRecTrainer(config, resumed_model)
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.start_epoch == 2
    assert (
        resumed.optimizer.state_dict()["state"].keys()
        == trainer.optimizer.state_dict()["state"].keys()
    )


def test_train_steps_per_epoch_bounds_an_epoch(tmp_path, tiny_llm):
    config, model, train, valid, test = _setup(tmp_path, tiny_llm, train_steps_per_epoch=2)
    calls = []
    original = model.calculate_loss

    def counting(interaction):
        calls.append(len(interaction))
        return original(interaction)

    trainer = InstructRecTrainer(config, model)
    trainer._train_epoch(train, 0, loss_func=counting)
    assert len(calls) == 2 < len(train)


def test_zero_shot_with_no_epochs(tmp_path, tiny_llm):
    result = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, tiny_llm, epochs=0, lora_r=0),
    )
    assert result["best_valid_result"] is None
    assert 0.0 <= result["test_result"]["ndcg@5"] <= 1.0
