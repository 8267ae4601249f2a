"""Paired statistics over users, and comparisons that refuse rows scored on other candidates."""

import json

import numpy as np
import pytest

from recbole_instructrec.bench import comparison, paired


def test_mcnemar_matches_the_exact_binomial_of_the_disagreements():
    # 16 users only a hits, 9 only b hits, the rest agree: exact two-sided p = 0.2295.
    a = np.array([1] * 16 + [0] * 9 + [1] * 500 + [0] * 418)
    b = np.array([0] * 16 + [1] * 9 + [1] * 500 + [0] * 418)
    only_a, only_b, p = paired.mcnemar_exact(a, b)
    assert (only_a, only_b) == (16, 9) and p == pytest.approx(0.2295, abs=1e-4)


def test_a_clear_difference_is_a_win_and_noise_is_not():
    rng = np.random.default_rng(0)
    base = rng.random(800)
    better = {"hit@1": (base < 0.6).astype(float), "ndcg@5": np.clip(base + 0.2, 0, 1)}
    worse = {"hit@1": (base < 0.3).astype(float), "ndcg@5": base}
    result = paired.compare(better, worse)
    assert result["hit@1"]["verdict"] == "win" and result["hit@1"]["p"] < 1e-6
    assert result["ndcg@5"]["ci95"][0] > 0 and result["ndcg@5"]["test"] == "Wilcoxon signed-rank"
    assert paired.compare(worse, better)["hit@1"]["verdict"] == "loss"
    # Two rows that differ only by chance on a few users: no measurable difference.
    same = {"hit@1": worse["hit@1"].copy(), "ndcg@5": worse["ndcg@5"].copy()}
    same["hit@1"][:3] = 1 - same["hit@1"][:3]
    verdict = paired.compare(same, worse)["hit@1"]
    assert verdict["verdict"] == "no measurable difference"
    assert verdict["ci95"][0] < 0 < verdict["ci95"][1] or verdict["difference"] == 0


def test_identical_rows_give_a_zero_interval_and_p_one():
    values = {"hit@1": np.array([1.0, 0.0, 1.0]), "ndcg@5": np.array([1.0, 0.5, 0.63])}
    result = paired.compare(values, values)
    assert result["hit@1"]["ci95"] == [0.0, 0.0] and result["hit@1"]["p"] == 1.0
    assert result["ndcg@5"]["p"] == 1.0


def _row(tmp_path, name, scores, items=None, valid=None, model="SASRec"):
    path = tmp_path / f"{name}.jsonl"
    with open(path, "w") as f:
        for u, row in enumerate(scores):
            f.write(
                json.dumps({"user": str(u), "items": items or list("abc"), "scores": row}) + "\n"
            )
    record = {"model": name, "recbole_model": model, "scores_file": str(path)}
    if valid is not None:
        record["convergence"] = {
            "best_valid_score": valid,
            "stop_reason": "early stopping",
            "best_epoch": 3,
            "epochs_run": 14,
        }
    return record


def test_rows_on_other_candidates_are_refused(tmp_path):
    a = _row(tmp_path, "SASRec", [[0.9, 0.1, 0.2]] * 4)
    b = _row(tmp_path, "Other", [[0.9, 0.1, 0.2]] * 4, items=list("abd"))
    with pytest.raises(comparison.ComparisonError, match="not scored on the same users"):
        comparison.compare_rows([a, b])


def test_best_baseline_is_chosen_by_validation_not_by_test(tmp_path):
    # BERT4Rec is better on test, SASRec-tuned on validation: the reference is SASRec-tuned.
    sasrec = _row(tmp_path, "SASRec", [[0.9, 0.1, 0.2]] * 2 + [[0.1, 0.9, 0.2]] * 2, valid=0.5)
    tuned = _row(tmp_path, "SASRec-tuned", [[0.1, 0.9, 0.2]] * 4, valid=0.7)
    bert = _row(tmp_path, "BERT4Rec", [[0.9, 0.1, 0.2]] * 4, valid=0.6, model="BERT4Rec")
    llm = _row(tmp_path, "InstructRec-LoRA", [[0.9, 0.1, 0.2]] * 4, model="InstructRec")
    result = comparison.compare_rows([sasrec, tuned, bert, llm])
    assert result["references"] == {
        "SASRec": "SASRec",
        "best baseline (by validation)": "SASRec-tuned",
    }
    llm_row = result["rows"][3]
    assert llm_row["against"]["SASRec"]["hit@1"]["difference"] == pytest.approx(0.5)
    assert llm_row["against"]["best baseline (by validation)"]["hit@1"]["only_a_hits"] == 4
    text = "\n".join(comparison.markdown_lines(result))
    assert "early stopping, best epoch 3 of 14" in text and "Against best baseline" in text


def test_two_runs_of_one_row_can_be_compared(tmp_path):
    rows = {}
    for index, scores in ((1, [[0.9, 0.1, 0.2]] * 4), (2, [[0.1, 0.9, 0.2]] * 4)):
        folder = tmp_path / f"run{index}"
        folder.mkdir()
        record = _row(folder, "T0", scores)
        path = tmp_path / f"bench-run{index}.json"
        path.write_text(json.dumps({"run": {"commit": str(index)}, "results": [record]}))
        rows[index] = str(path)
    loaded = comparison.load_rows([rows[1], rows[2]], ["T0@1", "T0@2"])
    assert [r["model"] for r in loaded] == ["T0 (bench-run1)", "T0 (bench-run2)"]
    with pytest.raises(comparison.ComparisonError, match="NAME@K"):
        comparison.load_rows([rows[1]], ["T1"])
