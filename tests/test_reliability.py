"""Determinism, resume after SIGKILL, and no leakage of evaluation targets into training."""

import json
import os
import signal
import subprocess
import sys

import pandas as pd
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import DATASET_DIR, ROOT, tiny_config

RUN = """
import json, os, signal, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import recbole_instructrec
from recbole_instructrec.trainer.trainer import InstructRecTrainer
settings = json.loads(sys.argv[1])
kill_after = settings.pop("_kill_after_epoch", None)
if kill_after is not None:
    original = InstructRecTrainer._save_checkpoint
    def save_then_die(self, epoch, verbose=True, **kwargs):
        original(self, epoch, verbose=verbose, **kwargs)
        if kwargs.get("saved_model_file") == self.resume_file and epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    InstructRecTrainer._save_checkpoint = save_then_die
result = recbole_instructrec.run_recbole(model="InstructRec", dataset="tiny", config_dict=settings)
print("RESULT=" + json.dumps({{k: float(v) for k, v in result["test_result"].items()}}))
"""


def _run(settings):
    script = RUN.format(root=ROOT, tests=os.path.join(ROOT, "tests"))
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT=")]
    return done.returncode, json.loads(lines[0][7:]) if lines else None, done.stderr


def _settings(tmp_path, llm, folder, **extra):
    settings = tiny_config(tmp_path / folder, llm, epochs=3, train_steps_per_epoch=3, **extra)
    settings["checkpoint_dir"] = str(tmp_path / folder / "saved")
    return settings


def test_same_seed_gives_identical_metrics(tmp_path, tiny_llm):
    first = recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path / "a", tiny_llm)
    )
    second = recbole_instructrec.run_recbole(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path / "b", tiny_llm)
    )
    assert first["test_result"] == second["test_result"]
    assert first["best_valid_result"] == second["best_valid_result"]


def test_resume_after_sigkill_reaches_the_uninterrupted_metrics(tmp_path, tiny_llm):
    code, uninterrupted, err = _run(_settings(tmp_path, tiny_llm, "whole"))
    assert code == 0, err[-2000:]

    killed = _settings(tmp_path, tiny_llm, "killed", _kill_after_epoch=1)
    code, result, _ = _run(killed)
    assert code == -signal.SIGKILL and result is None
    saved = tmp_path / "killed" / "saved"
    (resume,) = [f for f in os.listdir(saved) if f.endswith(".resume.safetensors")]
    assert not [f for f in os.listdir(saved) if f.startswith(".tmp-")]  # no half-written file

    resumed = _settings(tmp_path, tiny_llm, "killed", resume_checkpoint=str(saved / resume))
    code, result, err = _run(resumed)
    assert code == 0, err[-2000:]
    assert result == uninterrupted


def test_evaluation_targets_never_reach_training_prompts(tmp_path, tiny_llm):
    config = Config(
        model="InstructRec", dataset="tiny", config_dict=tiny_config(tmp_path, tiny_llm)
    )
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    full = {}  # each user's whole chronological sequence, from the raw atomic file
    raw = pd.read_csv(os.path.join(DATASET_DIR, "tiny", "tiny.inter"), sep="\t")
    raw = raw.sort_values(["user_id:token", "timestamp:float"], kind="stable")
    for user, item in zip(raw["user_id:token"], raw["item_id:token"]):
        full.setdefault(dataset.token2id("user_id", user), []).append(
            dataset.token2id("item_id", item)
        )
    held_out = {}  # user -> [(history length, target)] of its validation and test rows
    for loader in (valid, test):
        rows = loader._dataset.inter_feat
        for user, length, item in zip(
            rows["user_id"].tolist(), rows["item_length"].tolist(), rows["item_id"].tolist()
        ):
            held_out.setdefault(user, []).append((length, item))
            assert full[user][length] == item  # a held-out row targets that very position
    feat = train._dataset.inter_feat
    training_rows = list(
        zip(
            feat["user_id"].tolist(),
            feat["item_id_list"].tolist(),
            feat["item_length"].tolist(),
            feat["item_id"].tolist(),
        )
    )
    model = recbole_instructrec.InstructRec(config, train._dataset)
    for n, (user, seq, length, target) in enumerate(training_rows):
        history = seq[:length]
        # A training example is a prefix of the user's sequence that stops before every
        # held-out position (the test target is last, the validation target before it).
        assert history + [target] == full[user][: length + 1]
        assert all(length < held_length for held_length, _ in held_out[user])
        if n < 30:
            prompt = model.tokenizer.decode(model.prompts.prompt_ids(history))
            for _, held_item in held_out[user]:
                if held_item not in history:
                    assert model.texts[held_item] not in prompt
