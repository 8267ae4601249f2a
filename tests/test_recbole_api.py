"""RecBole's own Python API (``recbole.quick_start``) runs InstructRec, whatever the import order.

Each check runs in a fresh interpreter, since what matters is the order in which a user's script
imports ``recbole.quick_start`` (which loads ray 2.6.3) and ``recbole_instructrec``.
"""

import json
import math
import os
import subprocess
import sys

import yaml

from conftest import ROOT, tiny_config

# The way RecBole's tests/model/test_model.py imports and calls it: recbole.quick_start first,
# so ray loads before anything of ours could prepare numpy 2 for it.
SCRIPT = """
import json, sys
from recbole.quick_start import objective_function, run_recbole

assert "recbole_instructrec" not in sys.modules  # the start-up hook must not load the plugin
import recbole_instructrec  # registers InstructRec with RecBole's lookups

result = objective_function(
    config_dict=json.loads(sys.argv[1]), config_file_list=[sys.argv[2]], saved=False
)
print("RESULT " + json.dumps(result, default=float))
"""

METRICS = {f"{metric}@{k}" for metric in ("hit", "ndcg") for k in (1, 3, 5, 10)}


def _run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=tmp_path,  # RecBole writes log/ and log_tensorboard/ into the working directory
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_objective_function_runs_instructrec_after_importing_quick_start_first(tmp_path, tiny_llm):
    settings = tiny_config(tmp_path, tiny_llm, model="InstructRec")
    # The shape of RecBole's test_model.yaml: data and schedule in a file, the model in the dict.
    config_file = tmp_path / "test_model.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "dataset": "tiny",
                "data_path": settings.pop("data_path"),
                "epochs": settings.pop("epochs"),
                "state": "ERROR",
            }
        )
    )
    settings.pop("state")

    result = _run(tmp_path, json.dumps(settings), str(config_file))

    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    output = json.loads(line[len("RESULT ") :])
    assert output["model"] == "InstructRec"
    assert output["valid_score_bigger"] is True
    for split in ("best_valid_result", "test_result"):
        values = output[split]
        assert set(values) == METRICS
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values.values()), values
        assert values["hit@1"] <= values["hit@5"] <= values["hit@10"] == 1.0  # uni9: 10 candidates
    assert output["best_valid_score"] == output["best_valid_result"]["ndcg@5"]  # valid_metric
