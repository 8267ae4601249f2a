"""The cold-item slice: test cases whose target item has few training interactions.

An item's training count is :mod:`recbole_instructrec.data.training_counts`'s (under
leave-one-out, how often it occurs among the interactions before each user's validation and
test targets); the slice holds the test users whose target has at most
``COLD_MAX_TRAIN_INTERACTIONS``. ID models learn little about such items; text models can still
read their titles.
"""

import numpy as np

COLD_MAX_TRAIN_INTERACTIONS = 5
# Training counts of the target, bucketed: the first bucket is the cold slice, the others show
# at which popularity ID models take over from text (``None``: no upper bound).
POPULARITY_BUCKETS = ((0, COLD_MAX_TRAIN_INTERACTIONS), (6, 10), (11, 20), (21, 50), (51, None))


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
