"""Several processes starting at once: RecBole's start folders and the LLM cache.

* ``--nproc=2`` in an empty folder: both ranks create ``log/`` and ``saved/`` at the same moment
  (start_race_helper.py widens that moment to a second). RecBole's own ``ensure_dir`` crashes
  the slower rank; the plugin's does not.
* Two processes loading a GGUF model with an empty cache: one de-quantizes, the other waits for
  the complete files. Without the lock both de-quantize.
"""

import json
import multiprocessing
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_config

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "start_race_helper.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return str(s.getsockname()[1])


def _start_two_ranks(folder, llm_path, without_fix=False):
    folder.mkdir()
    config = tiny_config(folder, llm_path, state="ERROR")
    del config["checkpoint_dir"]  # RecBole's default, saved/ in the empty working folder
    job = folder.parent / f"{folder.name}.json"
    job.write_text(json.dumps({"config": config, "port": _free_port()}))
    env = dict(os.environ, PYTHONPATH=ROOT, RACE_WITHOUT_FIX="1" if without_fix else "0")
    return subprocess.run(
        [sys.executable, HELPER, str(job)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_two_ranks_start_in_empty_folders_again_and_again(tmp_path, tiny_llm):
    for attempt in range(3):
        folder = tmp_path / f"fresh-{attempt}"
        done = _start_two_ranks(folder, tiny_llm)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "TEST_RESULT" in done.stdout
        assert (folder / "log" / "InstructRec").is_dir()
        assert len(os.listdir(folder / "saved")) == 2  # rank 0 alone: best and resume files


def test_without_the_fix_the_slower_rank_crashes(tmp_path, tiny_llm):
    done = _start_two_ranks(tmp_path / "fresh", tiny_llm, without_fix=True)
    assert done.returncode != 0
    assert "FileExistsError" in done.stderr


def _load_in_process(gguf, cache, counter, barrier, answers, with_lock):
    import contextlib
    import time

    import filelock

    from recbole_instructrec.scoring import backbone

    def load_slowly(path):
        with open(counter, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return "model", "tokenizer"

    def save_in_two_halves(model, tokenizer, directory, gguf_path):
        with open(os.path.join(directory, "model.safetensors"), "wb") as f:
            f.write(b"a" * 1000)
            f.flush()
            time.sleep(0.5)
            f.write(b"b" * 1000)
        with open(os.path.join(directory, "source.json"), "w", encoding="utf-8") as f:
            json.dump({"gguf_file": gguf_path}, f)

    backbone._load_gguf, backbone._save_plain_copy = load_slowly, save_in_two_halves
    if not with_lock:
        filelock.FileLock = lambda path: contextlib.nullcontext()
    barrier.wait()
    try:
        target = backbone._dequantized_gguf_dir(gguf, cache)
        with open(os.path.join(target, "model.safetensors"), "rb") as f:
            answers.put((target, f.read()))
    except OSError as err:
        # Without the lock the two processes may trip over each other's rename; the parent
        # must still get an answer rather than wait out its timeout.
        answers.put((None, repr(err)))


def _two_processes_load(tmp_path, with_lock):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    counter = tmp_path / "dequantized-by"
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(2), context.Queue()
    args = (str(gguf), str(tmp_path / "cache"), str(counter), barrier, answers, with_lock)
    processes = [context.Process(target=_load_in_process, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    results = [answers.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return results, counter.read_text().split()


def test_one_process_dequantizes_while_the_other_waits(tmp_path):
    results, dequantized_by = _two_processes_load(tmp_path, with_lock=True)
    assert len(dequantized_by) == 1
    (target_a, bytes_a), (target_b, bytes_b) = results
    assert target_a == target_b
    assert bytes_a == bytes_b == b"a" * 1000 + b"b" * 1000  # never half a file


def test_without_the_lock_both_processes_dequantize(tmp_path):
    _, dequantized_by = _two_processes_load(tmp_path, with_lock=False)
    assert len(dequantized_by) == 2


def _losing_the_rename(tmp_path, monkeypatch, other_copy_complete):
    """Run the cache build as the process whose rename comes second: just before it renames,
    another process (unseen by the lock, as on a filesystem without working locks) puts its
    own copy under the target's name."""
    from recbole_instructrec.scoring import backbone

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    real_replace = os.replace

    def save(model, tokenizer, directory, gguf_path):
        for name in ("model.safetensors", "source.json"):
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write("mine")

    def other_process_wins(staging, target):
        os.makedirs(target, exist_ok=True)
        names = ("model.safetensors", "source.json") if other_copy_complete else ("x.tmp",)
        for name in names:
            with open(os.path.join(target, name), "w", encoding="utf-8") as f:
                f.write("theirs")
        real_replace(staging, target)

    monkeypatch.setattr(backbone, "_load_gguf", lambda path: ("model", "tokenizer"))
    monkeypatch.setattr(backbone, "_save_plain_copy", save)
    monkeypatch.setattr(backbone.os, "replace", other_process_wins)
    return backbone._dequantized_gguf_dir(str(gguf), str(tmp_path / "cache"))


def test_a_lost_rename_uses_the_winners_complete_copy(tmp_path, monkeypatch):
    target = _losing_the_rename(tmp_path, monkeypatch, other_copy_complete=True)
    with open(os.path.join(target, "model.safetensors"), encoding="utf-8") as f:
        assert f.read() == "theirs"
    assert [n for n in os.listdir(tmp_path / "cache") if n.startswith(".model-")] == []


def test_a_lost_rename_to_an_incomplete_copy_still_fails(tmp_path, monkeypatch):
    with pytest.raises(OSError):
        _losing_the_rename(tmp_path, monkeypatch, other_copy_complete=False)


def test_every_recbole_module_that_names_ensure_dir_gets_the_safe_one():
    import importlib
    import pathlib

    import recbole

    from recbole_instructrec.plugin import make_dirs

    root = pathlib.Path(recbole.__file__).parent
    users = [
        ".".join(("recbole",) + path.relative_to(root).with_suffix("").parts).replace(
            ".__init__", ""
        )
        for path in root.rglob("*.py")
        if "ensure_dir" in path.read_text(encoding="utf-8")
    ]
    assert "recbole.utils.logger" in users
    for name in users:
        assert importlib.import_module(name).ensure_dir is make_dirs, name
