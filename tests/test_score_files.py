"""The one loader of per-user score files: compressed or plain, by either name."""

import gzip
import json

import pytest

from recbole_instructrec.bench.comparison import ComparisonError, compare_rows, load_rows
from recbole_instructrec.bench.score_files import (
    read_score_file,
    score_file_of_result,
    score_file_path,
    score_files_in,
    write_score_file,
)

RECORDS = [
    {"user": "u2", "items": ["b", "a"], "scores": [0.5, -1.25]},
    {"user": "u1", "items": ["a", "c"], "scores": [2.0, 1.0]},
]


def _plain(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n", encoding="utf-8")


def test_a_compressed_file_is_read_by_its_old_plain_name_and_its_own(tmp_path):
    written = tmp_path / "scores" / "ml-SASRec.jsonl.gz"
    write_score_file(str(written), RECORDS)
    assert gzip.decompress(written.read_bytes()).decode().count("\n") == 2
    # Result files written before compression name the plain file.
    assert read_score_file(str(tmp_path / "scores" / "ml-SASRec.jsonl")) == RECORDS
    assert read_score_file(str(written)) == RECORDS
    assert score_file_path(str(tmp_path / "scores" / "ml-SASRec.jsonl")) == str(written)


def test_a_plain_file_is_read_by_its_own_name_and_the_compressed_one(tmp_path):
    plain = tmp_path / "ml-SASRec.jsonl"
    _plain(plain, RECORDS)
    assert read_score_file(str(plain)) == RECORDS
    assert read_score_file(str(tmp_path / "ml-SASRec.jsonl.gz")) == RECORDS


def test_a_missing_score_file_is_named(tmp_path):
    assert score_file_path(str(tmp_path / "nope.jsonl")) is None
    assert score_file_path(None) is None
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_score_file(str(tmp_path / "nope.jsonl"))


def test_writing_is_deterministic_and_only_compressed(tmp_path):
    write_score_file(str(tmp_path / "a.jsonl.gz"), RECORDS)
    write_score_file(str(tmp_path / "b.jsonl.gz"), RECORDS)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    with pytest.raises(ValueError, match=".jsonl.gz"):
        write_score_file(str(tmp_path / "c.jsonl"), RECORDS)


def test_a_folder_lists_each_score_file_once_in_either_form(tmp_path):
    write_score_file(str(tmp_path / "ml-BERT4Rec.jsonl.gz"), RECORDS)
    _plain(tmp_path / "ml-SASRec.jsonl", RECORDS)
    write_score_file(str(tmp_path / "ml-SASRec.jsonl.gz"), RECORDS)
    (tmp_path / "candidates.json").write_text("{}")
    assert [name for name, _ in score_files_in(str(tmp_path))] == ["ml-BERT4Rec", "ml-SASRec"]
    assert dict(score_files_in(str(tmp_path)))["ml-SASRec"] == str(tmp_path / "ml-SASRec.jsonl")


def _result_file(folder, recorded):
    folder.mkdir(parents=True, exist_ok=True)
    result = folder / "bench-x.json"
    result.write_text(json.dumps({"run": {}, "results": [{"model": "M", "scores_file": recorded}]}))
    return result


def test_a_row_written_elsewhere_reads_the_score_file_committed_beside_its_result(tmp_path):
    results = tmp_path / "repo" / "benchmarks" / "experiments" / "x" / "results"
    write_score_file(str(results / "scores" / "run-a" / "ml-M.jsonl.gz"), RECORDS)
    # The run wrote from a scratch checkout that no longer exists.
    gone = "/nowhere/worktree/benchmarks/results/scores/run-a/ml-M.jsonl.gz"
    result = _result_file(results, gone)
    (row,) = load_rows([str(result)])
    assert read_score_file(row["scores_file"]) == RECORDS
    assert score_file_of_result(str(result), gone) != gone


def test_a_row_whose_score_file_is_nowhere_still_fails_by_name(tmp_path):
    results = tmp_path / "benchmarks" / "experiments" / "x" / "results"
    write_score_file(str(results / "scores" / "run-b" / "ml-M.jsonl.gz"), RECORDS)
    # Beside the result file, but under another run's folder: not the row's file.
    gone = "/nowhere/benchmarks/results/scores/run-a/ml-M.jsonl.gz"
    result = _result_file(results, gone)
    (row,) = load_rows([str(result)])
    assert row["scores_file"] == gone
    with pytest.raises(ComparisonError, match="run-a/ml-M.jsonl.gz"):
        compare_rows([row, row])
