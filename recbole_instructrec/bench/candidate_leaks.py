"""Stored candidate negatives that the user actually interacted with.

:func:`..candidates.draw_candidates` excludes the items of ``user_items(full_dataset)``, but it
is called after ``data_preparation``, which rewrites a sequential dataset's ``inter_feat`` into
one row per prediction target: each user's *first* interaction is only history there, so it is
missing from the user's "seen" set and can be drawn as a negative. The stored candidate files
(``candidates-*.jsonl``) back every committed comparison, so they are kept as they are; this
module measures the damage instead, against each user's complete history in the raw atomic
``.inter`` file (every interaction, at any time, before any split).
"""

import numpy as np

from recbole_instructrec.data.training_counts import read_atomic_interactions


class CandidateMismatch(ValueError):
    """Candidates that cannot come from the given interactions (unknown user, or a positive the
    user never interacted with)."""


def read_histories(inter_path, users=None):
    """``{user token: [item tokens in time order]}`` from an atomic ``.inter`` file (ties in time
    keep file order), for ``users`` only when given."""
    user_tokens, item_tokens, times = read_atomic_interactions(inter_path)
    if users is not None:
        keep = np.isin(user_tokens, list(users))
        user_tokens, item_tokens = user_tokens[keep], item_tokens[keep]
        times = times[keep] if times is not None else None
    if times is not None:
        order = np.lexsort((times, user_tokens))  # by user, then time; stable on ties
    else:
        order = np.argsort(user_tokens, kind="stable")
    histories = {}
    for user, item in zip(user_tokens[order].tolist(), item_tokens[order].tolist()):
        histories.setdefault(user, []).append(item)
    return histories


def leaked_negatives(candidates, histories):
    """``[(user, item)]``, in candidate order: every negative (an item after the first) of
    ``candidates`` ({user token: [item tokens]}) that the user interacted with at any time in
    ``histories`` ({user token: its items}). Raises :class:`CandidateMismatch` when a user has
    no history or its positive is not in it: then the candidates are not from these
    interactions, and finding no leak would mean nothing."""
    leaks = []
    for user, items in candidates.items():
        if user not in histories:
            raise CandidateMismatch(f"user {user!r} of the candidates has no interactions")
        seen = set(histories[user])
        if items[0] not in seen:
            raise CandidateMismatch(
                f"user {user!r}: its positive {items[0]!r} is not one of its interactions"
            )
        leaks += [(user, item) for item in items[1:] if item in seen]
    return leaks
