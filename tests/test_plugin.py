"""Registration with RecBole's own lookups, config precedence, and the version shims."""

import os
import subprocess
import sys

import numpy as np
import pytest
from recbole.config import Config
from recbole.utils import get_model, get_trainer

from conftest import DATASET_DIR, ROOT
from recbole_instructrec import InstructRec, InstructRecTrainer


def test_recbole_lookups_resolve_instructrec():
    assert get_model("InstructRec") is InstructRec
    config = Config(model="InstructRec", dataset="tiny", config_dict={"data_path": DATASET_DIR})
    assert get_trainer(config["MODEL_TYPE"], "InstructRec") is InstructRecTrainer


def test_defaults_follow_the_papers_protocol():
    config = Config(model="InstructRec", dataset="ml-100k")
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "uni9", "test": "uni9"}
    assert config["valid_metric"] == "NDCG@5"
    assert set(config["topk"]) >= {1, 3, 5, 10}
    assert [m.lower() for m in config["metrics"]] == ["hit", "ndcg"]


def test_config_precedence(tmp_path, monkeypatch):
    """RecBole defaults < our properties < config files < config dict < command line."""
    # RecBole's default learning_rate (0.001) is overridden by ours (0.0003).
    assert Config(model="InstructRec", dataset="ml-100k")["learning_rate"] == 0.0003
    first = tmp_path / "a.yaml"
    first.write_text("learning_rate: 0.01\nlora_r: 4\nlora_alpha: 8\nmax_history_items: 3\n")
    second = tmp_path / "b.yaml"
    second.write_text("lora_r: 2\n")
    config = Config(
        model="InstructRec",
        dataset="ml-100k",
        config_file_list=[str(first), str(second)],
        config_dict={"lora_alpha": 32, "max_history_items": 5},
    )
    assert config["learning_rate"] == 0.01  # file beats properties
    assert config["lora_r"] == 2  # later file beats earlier file
    assert config["lora_alpha"] == 32  # dict beats file
    monkeypatch.setattr(sys, "argv", ["run_recbole", "--max_history_items=7"])
    config = Config(
        model="InstructRec",
        dataset="ml-100k",
        config_file_list=[str(first)],
        config_dict={"max_history_items": 5},
    )
    assert config["max_history_items"] == 7  # command line beats everything


def test_user_can_switch_protocol_from_the_command_line(monkeypatch):
    monkeypatch.setattr(
        sys, "argv", ["run_recbole", "--eval_args={'mode': {'valid': 'uni99', 'test': 'pop99'}}"]
    )
    config = Config(model="InstructRec", dataset="ml-100k")
    assert config["eval_args"]["mode"] == {"valid": "uni99", "test": "pop99"}
    assert config["test_neg_sample_args"]["distribution"] == "popularity"


def test_other_models_keep_recbole_defaults():
    config = Config(model="SASRec", dataset="ml-100k")
    assert config["learning_rate"] == 0.001
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    # ...except that a CE-loss model no longer needs --train_neg_sample_args=None to start.
    assert config["train_neg_sample_args"]["distribution"] == "none"
    bpr = Config(model="SASRec", dataset="ml-100k", config_dict={"loss_type": "BPR"})
    assert bpr["train_neg_sample_args"]["distribution"] == "uniform"


def test_numpy2_and_pandas3_shims_load_token_seq_fields():
    from recbole.data import create_dataset

    config = Config(model="InstructRec", dataset="tiny", config_dict={"data_path": DATASET_DIR})
    dataset = create_dataset(config)
    row = dataset.item_feat[dataset.item_feat["item_id"] == dataset.token2id("item_id", "i1")]
    vocab = dataset.field2id_token["title"]
    assert [vocab[t] for t in row["title"].iloc[0] if t] == ["Long", "Road"]
    assert np.float_ is np.float64


def test_run_recbole_console_script_runs_sasrec(tmp_path):
    """The same entry point runs RecBole's own models (a subprocess, so nothing is shared)."""
    script = (
        "import sys; from recbole_instructrec.quick_start.cli import run_recbole_main; "
        "sys.argv = sys.argv[0:1] + sys.argv[1:]; run_recbole_main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "--model=SASRec",
            "--dataset=tiny",
            f"--data_path={DATASET_DIR}",
            "--epochs=1",
            f"--checkpoint_dir={tmp_path}",
            "--show_progress=False",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test result" in result.stdout + result.stderr
    assert any(name.startswith("SASRec-") for name in os.listdir(tmp_path))


def test_quick_start_does_not_import_ray():
    code = "import sys, recbole_instructrec; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.parametrize("name", ["InstructRec.yaml"])
def test_properties_ship_with_the_package(name):
    from recbole_instructrec.plugin import PROPERTIES_DIR

    assert os.path.isfile(os.path.join(PROPERTIES_DIR, name))
