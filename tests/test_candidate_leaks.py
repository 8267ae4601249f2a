"""Stored negatives that the user interacted with are found, on real ml-100k interactions."""

import json
import os

import pytest

from conftest import benchmark_script
from recbole_instructrec.bench import comparison
from recbole_instructrec.bench.candidate_leaks import (
    CandidateMismatch,
    leaked_negatives,
    read_histories,
)
from recbole_instructrec.bench.candidates import read_candidate_file
from recbole_instructrec.bench.user_sample import dataset_folder

ML_100K = os.path.join(dataset_folder(None, "ml-100k"), "ml-100k.inter")
USERS = ("196", "186", "22")


@pytest.fixture(scope="module")
def histories():
    return read_histories(ML_100K, USERS)


def _clean(histories):
    """Each user's last interaction, then 9 items it never interacted with."""
    every_item = sorted({i for items in read_histories(ML_100K).values() for i in items}, key=int)
    return {
        user: [items[-1]] + [i for i in every_item if i not in set(items)][:9]
        for user, items in histories.items()
    }


def test_histories_are_whole_and_in_time_order(histories):
    assert set(histories) == set(USERS)
    # ml-100k: user 196 rated 39 movies, the first of them (881250949 s) item 242.
    assert len(histories["196"]) == 39
    with open(ML_100K) as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    first = min((float(t), i) for u, i, _, t in rows if u == "196")
    assert histories["196"][0] == first[1]


def test_a_negative_that_is_the_first_interaction_is_found(histories):
    candidates = _clean(histories)
    assert leaked_negatives(candidates, histories) == []
    # The bug: the first interaction was missing from "seen", so it could be drawn.
    first = histories["186"][0]
    candidates["186"][4] = first
    assert leaked_negatives(candidates, histories) == [("186", first)]


def test_any_interaction_counts_and_the_positive_does_not(histories):
    candidates = _clean(histories)
    candidates["22"][9] = histories["22"][5]
    candidates["22"][1] = histories["22"][0]
    assert leaked_negatives(candidates, histories) == [
        ("22", histories["22"][0]),
        ("22", histories["22"][5]),
    ]


def test_candidates_from_other_interactions_are_refused(histories):
    candidates = _clean(histories)
    with pytest.raises(CandidateMismatch, match="has no interactions"):
        leaked_negatives({"no-such-user": candidates["196"]}, histories)
    candidates["196"][0] = candidates["196"][1]  # a positive the user never interacted with
    with pytest.raises(CandidateMismatch, match="positive"):
        leaked_negatives(candidates, histories)


def test_a_stored_candidate_file_is_read_as_tokens(tmp_path, histories):
    path = tmp_path / "candidates-ml-100k-uni9.jsonl"
    candidates = _clean(histories)
    path.write_text(
        "".join(json.dumps({"user": u, "items": i}) + "\n" for u, i in candidates.items())
    )
    assert read_candidate_file(path) == candidates


def _scores(tmp_path, name, rows):
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "".join(
            json.dumps({"user": str(u), "items": list("abc"), "scores": s}) + "\n"
            for u, s in enumerate(rows)
        )
    )
    return {"model": name, "recbole_model": name, "scores_file": str(path)}


def test_compare_rows_can_leave_users_out(tmp_path):
    hit, miss = [0.9, 0.1, 0.2], [0.1, 0.9, 0.2]
    sasrec = _scores(tmp_path, "SASRec", [hit, hit, hit, miss])
    other = _scores(tmp_path, "Other", [miss, hit, hit, miss])
    everyone = comparison.compare_rows([sasrec, other])
    assert everyone["n_users"] == 4 and "excluded_users" not in everyone
    without = comparison.compare_rows([sasrec, other], exclude_users={"0", "unknown"})
    assert without["n_users"] == 3 and without["excluded_users"] == ["0"]
    assert without["rows"][1]["metrics"]["hit@1"] == pytest.approx(2 / 3)
    assert without["rows"][1]["against"]["SASRec"]["hit@1"]["difference"] == 0.0


def test_the_script_reads_a_stored_compare_command_and_finds_raw_files():
    script = benchmark_script("candidate_leaks")
    options = script.compare_command(
        "instructrec compare --results a.json --results b.json --rows SASRec,X before fusion,Y "
        "--title shuffled titles: a -- b --reference SASRec --tag t"
    )
    assert options == {
        "results": ["a.json", "b.json"],
        "rows": "SASRec,X before fusion,Y",
        "title": "shuffled titles: a -- b",
        "reference": "SASRec",
        "tag": "t",
    }
    for name in ("ml-100k-uni9", "ml-100k-u150-s2020-uni9", "ml-100k-shuffled-titles-uni9"):
        assert script.raw_inter_file(f"x/candidates-{name}.jsonl", "data") == ML_100K
    games = script.raw_inter_file("candidates-amazon-games-u2000-s2020-uni9.jsonl", "data")
    assert games == os.path.join("data", "amazon-games", "amazon-games.inter")


def _targets_only(dataset):
    """The draw's "seen" sets read from the prediction targets alone, without the histories:
    the flaw the draw had (a user's first interaction is never a target)."""
    users = dataset.inter_feat[dataset.uid_field].numpy().tolist()
    items = dataset.inter_feat[dataset.iid_field].numpy().tolist()
    seen = {}
    for u, i in zip(users, items):
        seen.setdefault(u, set()).add(i)
    return seen


def test_the_bench_draw_leaks_no_interaction_and_the_old_draw_does(tmp_path, monkeypatch):
    """ml-100k, all 943 users, prepared and drawn exactly as ``instructrec bench`` does; every
    negative is checked against the user's whole history in the raw ``.inter`` file."""
    from recbole_instructrec.bench import candidates as cand
    from recbole_instructrec.bench import runner

    common = runner._common_settings("dataset", "uni9", 2020, str(tmp_path / "cache"), {})
    settings = {**common, **runner.BASELINE_SETTINGS, **runner.INTERACTIONS_ONLY}
    _, _, full, test = runner._prepare("SASRec", "ml-100k", settings)
    every_history = read_histories(ML_100K)

    def drawn():
        candidates = cand.draw_candidates(test, full, "uni9", 2020)
        return cand.candidate_tokens(candidates, test)

    tokens = drawn()
    assert len(tokens) == 943
    assert leaked_negatives(tokens, every_history) == []
    monkeypatch.setattr(cand, "user_items", _targets_only)
    leaks = leaked_negatives(drawn(), every_history)
    assert leaks, "the old draw must leak (its failing counterpart)"
    # what the old draw leaked is each time the user's first interaction
    assert all(every_history[user][0] == item for user, item in leaks)
