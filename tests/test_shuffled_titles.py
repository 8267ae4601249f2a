"""The shuffled-titles control dataset: same interactions, every item named after another."""

import os

import pandas as pd
import recbole

from conftest import benchmark_script

ML100K = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")


def _script():
    return benchmark_script("shuffled_titles")


def test_titles_are_permuted_and_nothing_else_changes(tmp_path):
    root, name = _script().shuffled_titles_dataset(ML100K, "ml-100k", str(tmp_path))
    folder = os.path.join(root, name)
    read = lambda path: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)  # noqa
    before = read(os.path.join(ML100K, "ml-100k.item"))
    after = read(os.path.join(folder, f"{name}.item"))
    title = "movie_title:token_seq"
    assert list(after["item_id:token"]) == list(before["item_id:token"])
    assert list(after["class:token_seq"]) == list(before["class:token_seq"])
    assert sorted(after[title]) == sorted(before[title])  # the same names, reassigned
    moved = (after[title] != before[title]).mean()
    assert moved > 0.95
    with open(os.path.join(ML100K, "ml-100k.inter"), encoding="utf-8") as f:
        inter = f.read()
    with open(os.path.join(folder, f"{name}.inter"), encoding="utf-8") as f:
        assert f.read() == inter


def _control_candidates(tmp_path, name, root, extra):
    """The stored candidates the bench draws for ``name``, and the training rows SASRec reads
    (ids, history, history length), as the bench prepares them."""
    from recbole_instructrec.bench import candidates as cand
    from recbole_instructrec.bench import runner

    common = runner._common_settings(root, "uni9", 2020, str(tmp_path / "cache"), extra)
    settings = {**common, **runner.BASELINE_SETTINGS, **runner.INTERACTIONS_ONLY}
    _, (train, _, _), full, test = runner._prepare("SASRec", name, settings)
    rows = train._dataset.inter_feat
    fields = ["user_id", "item_id", "item_id_list", "item_length"]
    training_rows = [rows[f].numpy().tobytes() for f in fields]
    return (
        cand.candidate_tokens(cand.draw_candidates(test, full, "uni9", 2020), test),
        training_rows,
    )


def test_the_control_draws_ml_100k_s_candidates_only_with_its_dataset_settings(tmp_path):
    """Every row of the control must pair with the headline's: same users, targets and
    negatives, and SASRec (which reads ids only) the same training rows, so that its headline
    row is its control row. RecBole's per-dataset settings of ml-100k (normalize_all) are what
    keep the time order, so the targets, the same; without them the candidates differ (the
    counterpart)."""
    source_root = tmp_path / "source"
    os.makedirs(source_root / "ml-100k")
    for entry in os.listdir(ML100K):
        with open(os.path.join(ML100K, entry), "rb") as f:
            (source_root / "ml-100k" / entry).write_bytes(f.read())
    script = _script()
    root, name = script.shuffled_titles_dataset(ML100K, "ml-100k", str(tmp_path / "control"))
    headline = _control_candidates(tmp_path, "ml-100k", str(source_root), {})
    control = _control_candidates(tmp_path, name, root, script.SOURCE_DATASET_SETTINGS)
    assert control[0] == headline[0]
    assert control[1] == headline[1]
    unmatched = _control_candidates(tmp_path, name, root, {})
    differing = sum(unmatched[0][u] != headline[0][u] for u in headline[0])
    assert differing > 100
    assert unmatched[1] != headline[1]
