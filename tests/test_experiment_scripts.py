"""The experiments' run.sh files: valid bash, and the shell functions they share
(benchmarks/experiments/run_helpers.sh) answer as their callers expect."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPERS = "benchmarks/experiments/run_helpers.sh"


def _helper(call):
    # run.sh runs with the project's environment first on PATH, as `python` there
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", f"source {HELPERS} && {call}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )


@pytest.mark.parametrize(
    "script", sorted(glob.glob(os.path.join(ROOT, "benchmarks", "experiments", "*", "run.sh")))
)
def test_every_run_sh_is_valid_bash(script):
    assert subprocess.run(["bash", "-n", script], capture_output=True).returncode == 0


def _bench_file(tmp_path, rows):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"results": rows}))
    return path


def test_has_row_answers_whether_the_file_holds_the_row(tmp_path):
    bench = _bench_file(tmp_path, [{"model": "SASRec"}])
    assert _helper(f"has_row {bench} SASRec").returncode == 0
    assert _helper(f"has_row {bench} InstructRec-LoRA").returncode != 0
    assert _helper(f"has_row {tmp_path / 'missing.json'} SASRec").returncode != 0


def test_checkpoint_of_prints_a_saved_checkpoint_and_names_a_missing_one(tmp_path):
    saved = tmp_path / "SASRec.pth"
    saved.write_bytes(b"x")
    bench = _bench_file(
        tmp_path,
        [{"model": "SASRec", "checkpoint": str(saved)}, {"model": "X", "checkpoint": "gone.pth"}],
    )
    found = _helper(f"checkpoint_of {bench} SASRec")
    assert found.returncode == 0 and found.stdout.strip() == str(saved)
    missing = _helper(f"checkpoint_of {bench} X")
    assert missing.returncode != 0 and "gone.pth" in missing.stderr
