"""The cold-item slice: test cases whose target item has few training interactions.

Under leave-one-out (RecBole's ``LS: valid_and_test``, ordered by time) a user's last
interaction is the test target, the one before it the validation target, and everything
earlier is training data. An item's training count is how often it occurs there; the slice
holds the test users whose target has at most ``COLD_MAX_TRAIN_INTERACTIONS``. ID models learn
little about such items; text models can still read their titles.
"""

import csv
import os
from collections import Counter

import numpy as np
import pandas as pd

COLD_MAX_TRAIN_INTERACTIONS = 5
# Training counts of the target, bucketed: the first bucket is the cold slice, the others show
# at which popularity ID models take over from text (``None``: no upper bound).
POPULARITY_BUCKETS = ((0, COLD_MAX_TRAIN_INTERACTIONS), (6, 10), (11, 20), (21, 50), (51, None))


def training_counts(users, items, times):
    """item -> occurrences in the training part (all but each user's last two, by time)."""
    users, items, times = np.asarray(users), np.asarray(items), np.asarray(times)
    order = np.lexsort((times, users))  # by user, then time; stable as RecBole's sort
    users, items = users[order], items[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    ends = np.r_[starts[1:], len(users)]
    counts = Counter()
    for s, e in zip(starts, ends):
        counts.update(items[s : max(s, e - 2)].tolist())
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


def counts_from_atomic(folder, name):
    """Training counts keyed by item token, from ``<folder>/<name>.inter``."""
    path = os.path.join(folder, f"{name}.inter")
    frame = pd.read_csv(path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE)
    column = {c.split(":")[0]: c for c in frame.columns}
    return dict(
        training_counts(
            frame[column["user_id"]].to_numpy(),
            frame[column["item_id"]].to_numpy(),
            frame[column["timestamp"]].astype(float).to_numpy(),
        )
    )


def _target_counts(target_tokens, counts):
    return np.array([counts.get(str(t), 0) for t in target_tokens], dtype=np.int64)


def cold_mask(target_tokens, counts, threshold=COLD_MAX_TRAIN_INTERACTIONS):
    return _target_counts(target_tokens, counts) <= threshold


def popularity_buckets(target_tokens, counts, buckets=POPULARITY_BUCKETS):
    """``{"0-5": mask, ..., "51+": mask}`` over test cases, by their target's training count."""
    n = _target_counts(target_tokens, counts)
    masks = {}
    for low, high in buckets:
        label = f"{low}+" if high is None else f"{low}-{high}"
        masks[label] = (n >= low) & (n <= (np.inf if high is None else high))
    return masks
