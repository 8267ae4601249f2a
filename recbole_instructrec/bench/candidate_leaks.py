"""Stored candidate negatives that the user actually interacted with.

Every negative of a candidate file is checked against the user's complete history in the raw
atomic ``.inter`` file (every interaction, at any time, before any split). The check is
independent of the draw (:func:`..candidates.draw_candidates`), which reads RecBole's built
dataset: there a sequential user's first interaction is only history, never a target, and a
draw that read the targets alone drew it as a negative (the experiments that
ran on that draw keep its files, and their READMEs say so; ``benchmarks/candidate_leaks.py``
measures them).
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
