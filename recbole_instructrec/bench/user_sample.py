"""A deterministic user sample of an atomic dataset, taken before any split.

The sample is written as a new atomic dataset (same files, .inter filtered to the sampled
users) so that every model of a benchmark loads exactly the same data through RecBole.
"""

import csv
import os
import shutil
import tempfile

import numpy as np
import pandas as pd


def dataset_folder(data_path, dataset):
    if dataset == "ml-100k":  # RecBole always reads ml-100k from its wheel
        import recbole

        return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")
    return os.path.join(data_path, dataset)


def sample_users(data_path, dataset, max_users, seed, out_root):
    """Returns (data_path, dataset name) of the sample; reuses an identical earlier sample."""
    source = dataset_folder(data_path, dataset)
    inter_path = os.path.join(source, f"{dataset}.inter")
    if not os.path.isfile(inter_path):
        raise FileNotFoundError(
            f"{inter_path} does not exist: set data_path so that <data_path>/{dataset}/ holds "
            f"{dataset}.inter (RecBole's atomic format)."
        )
    name = f"{dataset}-u{max_users}-s{seed}"
    target = os.path.join(out_root, name)
    if os.path.isfile(os.path.join(target, f"{name}.inter")):
        return out_root, name
    frame = pd.read_csv(inter_path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE)
    user_column = next(c for c in frame.columns if c.startswith("user_id:"))
    users = np.array(sorted(frame[user_column].unique()))
    if max_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    # A private staging folder, renamed into place: two benchmarks drawing the same sample at
    # once never write into or delete each other's files.
    os.makedirs(out_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=out_root)
    frame[frame[user_column].isin(set(users))].to_csv(
        os.path.join(staging, f"{name}.inter"), sep="\t", index=False, quoting=csv.QUOTE_NONE
    )
    for entry in os.listdir(source):
        stem, ext = os.path.splitext(entry)
        if stem == dataset and ext not in (".inter", ".yaml"):
            shutil.copy(os.path.join(source, entry), os.path.join(staging, name + ext))
    if not os.path.isfile(os.path.join(target, f"{name}.inter")):
        shutil.rmtree(target, ignore_errors=True)  # an incomplete sample of a killed run
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same (deterministic) sample first
        shutil.rmtree(staging, ignore_errors=True)
    return out_root, name
