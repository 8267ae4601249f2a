"""The side-by-side benchmark on tiny data: shared candidates, deterministic sample, outputs."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation

from conftest import DATASET_DIR
from recbole_instructrec.bench import report, run_benchmark
from recbole_instructrec.bench.cold_items import cold_mask, popularity_buckets
from recbole_instructrec.bench.score_files import read_score_file
from recbole_instructrec.bench.user_sample import sample_users
from recbole_instructrec.data.training_counts import (
    counts_from_atomic,
    counts_from_dataset,
    training_counts,
)
from recbole_instructrec.scoring.fusion import FUSION_GRID
from recbole_instructrec.scoring.ranking import positive_ranks, ranking_metrics


def test_user_sample_is_deterministic_and_taken_before_the_split(tmp_path):
    path_a, name = sample_users(DATASET_DIR, "tiny", 12, seed=3, out_root=str(tmp_path / "a"))
    path_b, _ = sample_users(DATASET_DIR, "tiny", 12, seed=3, out_root=str(tmp_path / "b"))
    path_c, _ = sample_users(DATASET_DIR, "tiny", 12, seed=4, out_root=str(tmp_path / "c"))

    a = pd.read_csv(os.path.join(path_a, name, f"{name}.inter"), sep="\t")
    b = pd.read_csv(os.path.join(path_b, name, f"{name}.inter"), sep="\t")
    assert a.equals(b)
    assert a["user_id:token"].nunique() == 12
    full = pd.read_csv(os.path.join(DATASET_DIR, "tiny", "tiny.inter"), sep="\t")
    # Whole histories are kept: the sample is of users, before any split.
    for user, rows in a.groupby("user_id:token"):
        assert len(rows) == (full["user_id:token"] == user).sum()
    c_name = "tiny-u12-s4"
    c = pd.read_csv(os.path.join(path_c, c_name, f"{c_name}.inter"), sep="\t")
    assert set(c["user_id:token"]) != set(a["user_id:token"])
    assert os.path.isfile(os.path.join(path_a, name, f"{name}.item"))


def test_metrics_from_ranks():
    ranks = positive_ranks(np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.1], [0.3, 0.3, 0.0]]))
    assert ranks.tolist() == [0, 2, 1]  # ties count against the positive
    metrics = ranking_metrics(ranks, [1, 3])
    assert metrics["hit@1"] == 1 / 3 and metrics["hit@3"] == 1.0
    assert abs(metrics["ndcg@3"] - (1 + 1 / np.log2(4) + 1 / np.log2(3)) / 3) < 1e-12


def test_benchmark_uses_identical_candidates_and_writes_results(tmp_path, tiny_llm):
    out = tmp_path / "results"
    records = run_benchmark(
        datasets=["tiny"],
        models=[
            "SASRec",
            "InstructRec-zeroshot",
            "InstructRec-LoRA",
            "InstructRec-Hybrid",
            "InstructRec-zeroshot-fused",
        ],
        protocol="uni9",
        max_users=25,
        data_path=DATASET_DIR,
        model_settings={
            "SASRec": {"epochs": 1},
            "InstructRec-LoRA": {"train_steps_per_epoch": 2},
            "InstructRec-Hybrid": {"train_steps_per_epoch": 2},
        },
        common_settings={"llm_path": tiny_llm, "eval_batch_size": 50},
        out_dir=str(out),
        tag="tiny",
        command="pytest",
    )
    hashes = {r["candidates_sha256"] for r in records}
    assert len(hashes) == 1 and None not in hashes
    assert {r["n_test_users"] for r in records} == {records[0]["n_test_users"]}
    for name in ("bench-tiny.json", "bench-tiny.md", "bench-tiny.png"):
        assert os.path.getsize(out / name) > 0
    payload = json.loads((out / "bench-tiny.json").read_text())
    assert payload["run"]["command"] == "pytest" and payload["run"]["machine"]["cpu_count"]
    row = payload["results"][0]
    for key in ("hit@1", "hit@3", "hit@5", "ndcg@3", "ndcg@5"):
        assert 0 <= row["metrics"][key] <= 1
    assert row["train_seconds"] >= 0 and row["eval_seconds"] >= 0
    # The stored candidates are the ones every model was scored on.
    candidate_file = out / os.path.basename(records[0]["candidates_file"])
    stored = [json.loads(line) for line in candidate_file.read_text().splitlines()]
    assert len(stored) == records[0]["n_test_users"]
    assert all(len(r["items"]) == 10 and len(set(r["items"])) == 10 for r in stored)
    report = (out / "bench-tiny.md").read_text()
    assert "| tiny (uni9) |" in report
    # The baseline trained to early stopping (or said why not), and its record says how.
    convergence = records[0]["convergence"]
    assert convergence["stop_reason"] in ("early stopping", "epoch limit", "time limit")
    assert convergence["epochs_run"] == len(convergence["curve"]) >= 1
    assert "epoch limit, best epoch 0 of 1, 0 without gain (not converged)" in report
    # A trained InstructRec row keeps its validation curve too, its epochs named a budget.
    lora = next(r for r in records if r["model"] == "InstructRec-LoRA")["convergence"]
    assert lora["epochs_run"] == 1 and "valid_score" in lora["curve"][0]
    assert "a budget of 1 epoch, best epoch 0" in report
    # Every row is set against SASRec with a paired interval and a p-value.
    paired = payload["paired"]["tiny (uni9)"]
    assert paired["references"]["SASRec"] == "SASRec"
    for row in paired["rows"][1:]:
        hit = row["against"]["SASRec"]["hit@1"]
        assert hit["ci95"][0] <= hit["difference"] <= hit["ci95"][1] and 0 <= hit["p"] <= 1
    assert "Against SASRec" in report
    # Every model is also reported on the same cold-item slice.
    slices = {(r["cold_slice"]["n_test_users"]) for r in records}
    assert len(slices) == 1 and 0 < slices.pop() <= records[0]["n_test_users"]
    assert "Cold-item slice" in (out / "bench-tiny.md").read_text()
    # The hybrid row read its item tokens from the SASRec row's checkpoint.
    assert records[3]["settings"]["collab_model_checkpoint"] == "@SASRec"
    # The fused row fitted its weight on validation, without training.
    assert records[4]["fusion_weight"] in FUSION_GRID and records[4]["train_seconds"] > 0
    # The same pass also scored its LLM alone: the zero-shot row's scores, reported beside it.
    before = records[5]
    assert before["model"] == "InstructRec-zeroshot-fused before fusion"
    assert before["metrics"] == records[1]["metrics"] and before["fusion_weight"] is None
    assert os.path.getsize(before["scores_file"]) > os.path.getsize(records[4]["scores_file"]) / 2
    assert "| InstructRec-zeroshot-fused before fusion |" in (out / "bench-tiny.md").read_text()


def test_a_row_that_needs_another_rows_checkpoint_says_so(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="List SASRec before InstructRec-Hybrid"):
        run_benchmark(
            datasets=["tiny"],
            models=["InstructRec-Hybrid"],
            max_users=25,
            data_path=DATASET_DIR,
            common_settings={"llm_path": tiny_llm},
            out_dir=str(tmp_path),
            tag="tiny",
        )


def test_cold_items_count_only_training_interactions():
    # user a: x y z w (z = validation, w = test); user b: x z v; user c: y
    users = ["a", "a", "a", "a", "b", "b", "b", "c"]
    items = ["x", "y", "z", "w", "x", "z", "v", "y"]
    times = [1, 2, 3, 4, 3, 1, 2, 1]  # b in time order: z x v
    counts = training_counts(users, items, times)
    assert counts == {"x": 1, "y": 1, "z": 1}
    assert cold_mask(["x", "w", "q"], {"x": 6}, threshold=5).tolist() == [False, True, True]


def test_popularity_buckets_partition_the_test_cases_and_start_with_the_cold_slice():
    counts = {"a": 5, "b": 6, "c": 20, "d": 21, "e": 51, "f": 400}
    targets = ["a", "b", "c", "d", "e", "f", "unseen"]
    buckets = popularity_buckets(targets, counts)
    assert {k: v.tolist() for k, v in buckets.items()} == {
        "0-5": [True, False, False, False, False, False, True],
        "6-10": [False, True, False, False, False, False, False],
        "11-20": [False, False, True, False, False, False, False],
        "21-50": [False, False, False, True, False, False, False],
        "51+": [False, False, False, False, True, True, False],
    }
    assert buckets["0-5"].tolist() == cold_mask(targets, counts).tolist()


def test_cold_counts_from_recbole_match_the_atomic_file_and_refuse_a_split_dataset():
    config = Config(
        model="SASRec",
        dataset="tiny",
        config_dict={
            "data_path": DATASET_DIR,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "train_neg_sample_args": None,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni9"},
            "state": "ERROR",
        },
    )
    dataset = create_dataset(config)
    expected = counts_from_atomic(os.path.join(DATASET_DIR, "tiny"), "tiny")
    assert counts_from_dataset(dataset) == expected and sum(expected.values()) > 0
    data_preparation(config, dataset)  # rewrites inter_feat: one row per prediction target
    with pytest.raises(ValueError, match="before data_preparation"):
        counts_from_dataset(dataset)


def test_a_row_can_evaluate_a_model_trained_by_run_recbole(tmp_path, tiny_llm, sasrec_checkpoint):
    def bench(sasrec_settings, models):
        return run_benchmark(
            datasets=["tiny"],
            models=models,
            data_path=DATASET_DIR,
            model_settings={"SASRec": sasrec_settings},
            common_settings={"llm_path": tiny_llm, "eval_batch_size": 50},
            out_dir=str(tmp_path),
            tag="tiny-trained",
        )

    records = bench(
        {"trained_checkpoint": sasrec_checkpoint}, ["SASRec", "InstructRec-zeroshot-fused"]
    )
    assert records[0]["checkpoint"] == sasrec_checkpoint
    assert records[0]["settings"]["trained_checkpoint"] == sasrec_checkpoint
    assert records[1]["fusion_weight"] in FUSION_GRID
    # no training: the same checkpoint evaluated twice gives the same metrics
    again = bench({"trained_checkpoint": sasrec_checkpoint}, ["SASRec"])
    assert again[0]["metrics"] == records[0]["metrics"]
    with pytest.raises(ValueError, match="trained_checkpoint='nowhere.pth' does not exist"):
        bench({"trained_checkpoint": "nowhere.pth"}, ["SASRec"])


def test_earlier_rows_serve_by_their_scores_and_by_their_checkpoint(tmp_path, tiny_llm):
    """--stored-row: the earlier row's scores, and its checkpoint for "@SASRec" settings;
    --trained-row: the earlier row's checkpoint evaluated again, without training."""

    def bench(models, tag, **rows):
        return run_benchmark(
            datasets=["tiny"],
            models=models,
            data_path=DATASET_DIR,
            model_settings={"SASRec": {"epochs": 1}},
            common_settings={"llm_path": tiny_llm, "eval_batch_size": 50},
            out_dir=str(tmp_path),
            tag=tag,
            **rows,
        )

    (first,) = bench(["SASRec"], "first")
    earlier = str(tmp_path / "bench-first.json")
    stored = bench(
        ["SASRec", "InstructRec-zeroshot-fused"], "stored", stored_rows={"SASRec": earlier}
    )
    assert stored[0]["stored_from"] and stored[0]["metrics"] == first["metrics"]
    assert stored[1]["fusion_weight"] in FUSION_GRID  # fused with the stored row's checkpoint
    (again,) = bench(["SASRec"], "again", trained_rows={"SASRec": earlier})
    assert again["settings"]["trained_checkpoint"] == first["checkpoint"]
    assert again["metrics"] == first["metrics"]
    with pytest.raises(ValueError, match="--trained-row BERT4Rec=.*has no row BERT4Rec"):
        bench(["BERT4Rec"], "missing", trained_rows={"BERT4Rec": earlier})
    os.remove(first["checkpoint"])
    with pytest.raises(ValueError, match="--trained-row SASRec=.*not on this machine"):
        bench(["SASRec"], "gone", trained_rows={"SASRec": earlier})


def test_variant_names_take_a_suffix_and_combine_the_hybrid_settings():
    from recbole_instructrec.bench.runner import resolve_model

    model, settings, grid = resolve_model("InstructRec-Hybrid-gated-fused-400steps")
    assert grid == [{}]
    assert model == "InstructRec"
    assert settings == {
        "item_id_tokens": True,
        "collab_model_checkpoint": "@SASRec",
        "item_token_min_interactions": 6,
        "fusion_model": "@SASRec",
    }
    assert resolve_model("InstructRec-Hybrid-gated")[1]["item_token_min_interactions"] == 6
    assert "fusion_model" not in resolve_model("InstructRec-Hybrid-gated")[1]
    assert resolve_model("SASRec") == ("SASRec", {}, [{}])
    # The tuned row is a validation grid of SASRec settings.
    model, settings, grid = resolve_model("SASRec-tuned")
    assert model == "SASRec" and settings == {} and len(grid) > 1


def _fusion_script():
    from conftest import benchmark_script

    return benchmark_script("fusion")


def test_popularity_aware_fusion_keeps_the_text_model_on_rare_candidates(tmp_path):
    """An LLM that knows the rare targets, an ID model that knows the popular ones and scores
    rare items low (as SASRec does): one weight cannot serve both, a rare-item weight can."""
    rng = np.random.default_rng(0)
    counts = {**{f"r{i}": 1 for i in range(200)}, **{f"w{i}": 100 for i in range(200)}}
    llm_rows, ids_rows = [], []
    for user in range(80):
        rare_target = user % 2 == 0
        items = [f"r{user}" if rare_target else f"w{user}"]
        items += [f"{'r' if k % 2 else 'w'}{100 + user + k}" for k in range(9)]
        rare = np.array([i.startswith("r") for i in items])
        llm = rng.normal(size=10)
        ids = np.where(rare, -3.0, 0.0) + rng.normal(scale=0.3, size=10)
        if rare_target:
            llm[0] += 4
        else:
            ids[0] += 4
        llm_rows.append({"user": str(user), "items": items, "scores": llm.tolist()})
        ids_rows.append({"user": str(user), "items": items, "scores": ids.tolist()})
    paths = []
    for name, rows in (("llm", llm_rows), ("ids", ids_rows)):
        paths.append(str(tmp_path / f"{name}.jsonl"))
        with open(paths[-1], "w", encoding="utf-8") as f:
            f.write("\n".join(json.dumps(r) for r in rows))

    result = _fusion_script().fuse(*paths, rare_counts=counts)
    cold = result["cold_slice"]
    assert cold["users"] == 40
    assert cold["popularity_aware"]["hit@1"] > cold["fused"]["hit@1"] + 0.3
    assert result["popularity_aware"]["fused"]["hit@1"] > result["fused"]["hit@1"]
    assert all(w["rare"] < w["others"] for w in result["popularity_aware"]["weights_of_b_per_fold"])
    assert result["popularity_aware"]["rare_candidate_share"] == 0.45  # (5 + 4) rare of 20
    # 40 targets among 360 rare candidates, 40 among 440 others
    assert result["popularity_aware"]["target_rate_of_rare_candidates"] == round(40 / 360, 4)
    assert result["popularity_aware"]["target_rate_of_other_candidates"] == round(40 / 440, 4)
    assert "popularity_aware" not in _fusion_script().fuse(*paths)


def test_a_model_config_can_narrow_the_tuned_grid_and_a_bad_grid_is_named(tmp_path, tiny_llm):
    point = {"hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "train_batch_size": 512}
    common = {
        "datasets": ["tiny"],
        "models": ["SASRec-tuned"],
        "max_users": 25,
        "data_path": DATASET_DIR,
        "common_settings": {"llm_path": tiny_llm},
        "out_dir": str(tmp_path),
        "tag": "tiny",
    }
    (record,) = run_benchmark(
        model_settings={"SASRec-tuned": {"epochs": 1, "validation_grid": [point]}}, **common
    )
    grid = record["validation_grid"]
    assert [p["settings"] for p in grid["points"]] == [point]
    assert grid["grid_from_model_config"] and record["settings"] == {**point, "epochs": 1}
    with pytest.raises(ValueError, match="SASRec-tuned: validation_grid must be a non-empty"):
        run_benchmark(model_settings={"SASRec-tuned": {"validation_grid": []}}, **common)


def _machine_folders(text):
    """The machine's own folders a result file names: the interpreter or the checkout."""
    root = next(folder for folder, name in report._places() if name == "")
    return [folder for folder in (sys.executable, root) if folder in text]


def test_a_report_names_the_repositorys_files_relative_to_its_root(tmp_path):
    root = next(folder for folder, name in report._places() if name == "")
    scores = os.path.join(root, "benchmarks", "experiments", "x", "results", "scores", "s.jsonl.gz")
    command = f"{sys.executable} benchmarks/x.py --out {os.path.join(root, 'benchmarks')}"
    payload = {"run": {"command": command}, "results": [{"scores_file": scores}]}
    report.save_report(str(tmp_path), "r", payload, [f"Command: `{command}`"], quiet=True)

    written = json.loads((tmp_path / "r.json").read_text())
    assert (
        written["results"][0]["scores_file"] == "benchmarks/experiments/x/results/scores/s.jsonl.gz"
    )
    assert written["run"]["command"] == "python benchmarks/x.py --out benchmarks"
    assert not _machine_folders((tmp_path / "r.json").read_text())
    assert not _machine_folders((tmp_path / "r.md").read_text())
    # the check reads the machine's folders in the payload as given
    assert _machine_folders(json.dumps(payload)) == [sys.executable, root]


def test_a_folder_is_rewritten_only_where_a_path_starts_with_it(tmp_path):
    """A checkout right under /tmp: its parent, /tmp, also sits inside other paths (a pytest
    folder's own tmp/), which must keep their names and still lead to the same file."""
    places = [("/tmp/fresh", ""), ("/tmp", "..")]
    value = "/tmp/pytest-of-me/ra0/tmp/saved/x.pth and /tmp/fresh/benchmarks/a.json in /tmp"
    written = report.portable(value, places)
    assert written == "../pytest-of-me/ra0/tmp/saved/x.pth and benchmarks/a.json in .."
    assert report.local_path("../pytest-of-me/ra0/tmp/saved/x.pth") == os.path.normpath(
        os.path.join(next(f for f, name in report._places() if name == ""), "..", "pytest-of-me")
        + "/ra0/tmp/saved/x.pth"
    )
    assert report.local_path("/abs/x.pth") == "/abs/x.pth"

    def rewritten_anywhere(value, places):  # the broken rewriting: inside other paths too
        for folder, name in places:
            value = value.replace(folder + os.sep, name + os.sep if name else "")
        return value

    assert "ra0../saved" in rewritten_anywhere(value, places)


def test_a_result_says_when_the_installed_package_is_not_the_checkout(tmp_path):
    """A stale install runs other code than the commit a result records: run_info says so."""
    import shutil

    package = os.path.dirname(os.path.dirname(os.path.abspath(report.__file__)))
    properties = os.path.join(os.path.dirname(package), "properties")
    if not os.path.isdir(properties):  # an installed copy keeps them inside the package
        properties = os.path.join(package, "properties")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(package, tmp_path / "recbole_instructrec", ignore=ignore)
    shutil.copytree(properties, tmp_path / "properties", ignore=ignore)
    shutil.rmtree(tmp_path / "recbole_instructrec" / "properties", ignore_errors=True)
    assert not report.installed_package_differs(str(tmp_path))
    changed = tmp_path / "recbole_instructrec" / "model" / "settings.py"
    changed.write_text(changed.read_text() + "\n# changed\n")
    assert report.installed_package_differs(str(tmp_path))
    assert not report.installed_package_differs(None)


def test_the_popularity_rule_ranks_the_stored_candidates_by_training_interactions(tmp_path):
    """The simplest baseline: candidates in the order of their training interactions (every
    interaction but each user's last two), read here from the raw file. RecBole's Pop is not
    that order: it adds one per training batch an item is in, not one per interaction."""

    def bench(models, protocol="uni9"):
        return run_benchmark(
            datasets=["tiny"],
            models=models,
            protocol=protocol,
            data_path=DATASET_DIR,
            model_settings={"Pop": {"epochs": 1}},
            out_dir=str(tmp_path),
            tag=f"popularity-{protocol}",
        )

    rule, pop = bench(["PopularityRule", "Pop"])
    inter = pd.read_csv(os.path.join(DATASET_DIR, "tiny", "tiny.inter"), sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable")
    position = inter.groupby("user_id").cumcount()
    length = inter.groupby("user_id")["item_id"].transform("size")
    counts = inter[position < length - 2]["item_id"].value_counts()

    def in_count_order(record):
        by_score = sorted(zip(record["scores"], record["items"]), reverse=True)
        ordered = [counts.get(item, 0) for _, item in by_score]
        return ordered == sorted(ordered, reverse=True)

    assert all(in_count_order(r) for r in read_score_file(rule["scores_file"]))
    # the failing counterpart: RecBole's Pop (a one-batch epoch here) ties nearly every item
    assert not all(in_count_order(r) for r in read_score_file(pop["scores_file"]))
    with pytest.raises(ValueError, match="PopularityRule ranks the stored candidates"):
        bench(["PopularityRule"], protocol="full")


def test_a_trained_item_head_is_ranked_again_in_full_mode(tmp_path, tiny_llm):
    """--trained-row with --protocol full: the item head's saved adapter and head, loaded
    untrained further; every item ranked from one position a user."""

    def bench(protocol, tag, **rows):
        return run_benchmark(
            datasets=["tiny"],
            models=["InstructRec-ItemHead-compact"],
            protocol=protocol,
            data_path=DATASET_DIR,
            common_settings={
                "llm_path": tiny_llm,
                "eval_batch_size": 50,
                "train_steps_per_epoch": 2,
                "epochs": 1,
            },
            out_dir=str(tmp_path),
            tag=tag,
            **rows,
        )

    (trained,) = bench("uni9", "sampled")
    earlier = str(tmp_path / "bench-sampled.json")
    (full,) = bench("full", "full", trained_rows={"InstructRec-ItemHead-compact": earlier})
    assert full["settings"]["trained_checkpoint"] == trained["checkpoint"]
    assert full["protocol"] == "full" and 0.0 <= full["metrics"]["hit@10"] <= 1.0
    assert full["training_signals"] in (0, None)  # loaded, not trained


def test_every_file_of_a_run_records_the_commit_it_started_at(tmp_path, tiny_llm, monkeypatch):
    """A run takes hours and the checkout moves on meanwhile: each result file records the
    commit read when the run started, not where HEAD stands when the file is written (a
    checkout that moves after the first read would show in the second task's file)."""
    heads = iter(["started-here"] + ["moved-on"] * 100)
    git = report._git
    monkeypatch.setattr(
        report, "_git", lambda *a: next(heads) if a == ("rev-parse", "HEAD") else git(*a)
    )
    run_benchmark(
        datasets=["tiny"],
        models=["SASRec"],
        data_path=DATASET_DIR,
        model_settings={"SASRec": {"epochs": 1}},
        common_settings={"llm_path": tiny_llm},
        out_dir=str(tmp_path),
        tag="moving",
        tasks=("sequential", "psearch-specific"),
    )
    for task in ("sequential", "psearch-specific"):
        run = json.loads((tmp_path / f"bench-moving-{task}.json").read_text())["run"]
        assert run["commit"] == "started-here", task
        assert run["started"] <= run["finished"]
