"""How often an item was seen in training: the one definition that the cold-item slice of the
benchmark and the item-token gate of the hybrid model (``item_token_min_interactions``) share.

An item's training count is how many times it occurs among a user's training interactions:
each user's interactions in time order, without the last ``held_out`` ones. It is read from
two views of the data:

- the raw interactions (an atomic ``.inter`` file, or a dataset as ``create_dataset`` made it):
  under leave-one-out (RecBole's ``LS: valid_and_test``, ordered by time) a user's last
  interaction is the test target and the one before it the validation target, so
  ``held_out=2`` (:data:`HELD_OUT`);
- RecBole's training split of a sequential dataset, the one a model is built on: its rows are
  already the training part, one per training *target*, so ``held_out=0``. A user's first
  interaction is never a target (it only appears as history), so this view counts what the
  model was trained to predict.
"""

import csv
import os
from collections import Counter

import numpy as np
import pandas as pd
import torch

# Leave-one-out holds out each user's last two interactions: validation, then test.
HELD_OUT = 2


def training_counts(users, items, times=None, held_out=HELD_OUT):
    """item -> occurrences among each user's interactions, in time order, but the last
    ``held_out`` (``times`` may be None when ``held_out`` is 0: then order does not matter)."""
    users, items = np.asarray(users), np.asarray(items)
    if not held_out:
        return Counter(items.tolist())
    order = np.lexsort((np.asarray(times), users))  # by user, then time; stable as RecBole's sort
    users, items = users[order], items[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    ends = np.r_[starts[1:], len(users)]
    counts = Counter()
    for s, e in zip(starts, ends):
        counts.update(items[s : max(s, e - held_out)].tolist())
    return counts


def counts_from_dataset(dataset):
    """Training counts keyed by item token, from a RecBole dataset as ``create_dataset`` made it.

    Not after ``data_preparation``: a sequential dataset's split rewrites ``inter_feat`` into one
    row per prediction target, so each user's first interaction is gone from it.
    """
    feat = dataset.inter_feat
    if getattr(dataset, "item_list_length_field", None) in getattr(feat, "columns", ()):
        raise ValueError(
            "counts_from_dataset needs the dataset before data_preparation split it (its "
            "inter_feat no longer holds each user's first interaction); pass a fresh "
            "create_dataset(config)."
        )
    tokens = dataset.field2id_token[dataset.iid_field]
    counts = training_counts(
        np.asarray(feat[dataset.uid_field]),
        np.asarray(feat[dataset.iid_field]),
        np.asarray(feat[dataset.time_field]),
    )
    return {str(tokens[i]): c for i, c in counts.items()}


def read_atomic_interactions(path):
    """(user tokens, item tokens, timestamps or None) of an atomic ``.inter`` file, as strings
    (ids keep their tokens) and float times."""
    frame = pd.read_csv(path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE)
    column = {c.split(":")[0]: c for c in frame.columns}
    times = frame[column["timestamp"]].astype(float).to_numpy() if "timestamp" in column else None
    return frame[column["user_id"]].to_numpy(), frame[column["item_id"]].to_numpy(), times


def counts_from_atomic(folder, name):
    """Training counts keyed by item token, from ``<folder>/<name>.inter``."""
    users, items, times = read_atomic_interactions(os.path.join(folder, f"{name}.inter"))
    if times is None:
        raise ValueError(f"{name}.inter has no timestamp column: leave-one-out needs one.")
    return dict(training_counts(users, items, times))


def target_counts(train_dataset):
    """``(item_num,)`` training counts of each item id in RecBole's training split
    ``train_dataset`` (the dataset a model is built on: one row per training target, so
    ``held_out=0``)."""
    feat = train_dataset.inter_feat
    counts = training_counts(
        np.asarray(feat[train_dataset.uid_field]),
        np.asarray(feat[train_dataset.iid_field]),
        held_out=0,
    )
    return torch.tensor([counts.get(i, 0) for i in range(train_dataset.item_num)])


def items_seen_at_least(train_dataset, minimum):
    """``(item_num,)`` bool mask: which items have at least ``minimum`` training counts in
    RecBole's training split ``train_dataset``."""
    return target_counts(train_dataset) >= minimum
