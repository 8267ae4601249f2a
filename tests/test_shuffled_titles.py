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
