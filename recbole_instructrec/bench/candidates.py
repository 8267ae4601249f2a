"""Fixed evaluation candidates, shared by every model of a comparison.

RecBole draws new negatives at every evaluation (RecBole issue #2077), so two models are
normally ranked against different candidates. Here the candidates of each test user are drawn
once, from a seeded generator, excluding every item the user interacted with, and stored; every
model then scores exactly these rows, and the SHA-256 of the array goes into each result.
"""

import hashlib
import json

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_instructrec.bench.atomic import write_text_atomic

PROTOCOLS = {"uni9": ("uniform", 9), "uni99": ("uniform", 99), "pop99": ("popularity", 99)}


class ProtocolError(ValueError):
    pass


def parse_protocol(protocol):
    if protocol == "full":
        return None
    if protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    if protocol[:3] in ("uni", "pop") and protocol[3:].isdigit() and int(protocol[3:]) > 0:
        return ("uniform" if protocol[:3] == "uni" else "popularity", int(protocol[3:]))
    raise ProtocolError(
        f"protocol={protocol!r} is not supported; use uniN or popN (e.g. uni9, uni99, pop99) "
        "or full."
    )


def user_items(dataset):
    """{internal user id: set of every item id it interacted with}.

    A sequential dataset that RecBole's ``data_preparation`` has built holds one row per
    prediction target, with the items before it as a history list: a user's first interaction
    is never a target there, only history. The histories are read too, so the set is whole
    whether the dataset is built or not (else the first interaction could be drawn as a
    negative, ``benchmarks/candidate_leaks.py``)."""
    feat = dataset.inter_feat
    users = feat[dataset.uid_field].numpy()
    seen = {}
    for u, i in zip(users.tolist(), feat[dataset.iid_field].numpy().tolist()):
        seen.setdefault(u, set()).add(i)
    history_field = getattr(dataset, "item_id_list_field", None)
    if history_field is not None and history_field in feat:
        for u, history in zip(users.tolist(), feat[history_field].numpy()):
            seen[u].update(history[history > 0].tolist())  # 0 pads the list
    return seen


def draw_candidates(test_dataset, full_dataset, protocol, seed):
    """(n_test_rows, 1 + N) array: the positive first, then N negatives the user never saw."""
    distribution, n = parse_protocol(protocol)
    seen = user_items(full_dataset)
    n_items = full_dataset.item_num
    if distribution == "popularity":
        counts = np.bincount(
            full_dataset.inter_feat[full_dataset.iid_field].numpy(), minlength=n_items
        )
        weights = counts.astype(np.float64)
    else:
        weights = np.ones(n_items)
    weights[0] = 0.0
    rng = np.random.default_rng(seed)
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy().tolist()
    positives = test_dataset.inter_feat[test_dataset.iid_field].numpy().tolist()
    rows = []
    for user, positive in zip(users, positives):
        allowed = weights.copy()
        allowed[list(seen.get(user, ())) + [positive]] = 0.0
        if (allowed > 0).sum() < n:
            raise ProtocolError(
                f"protocol={protocol}: a user has only {(allowed > 0).sum()} items it never "
                f"interacted with, fewer than {n} negatives; use a smaller N."
            )
        negatives = rng.choice(n_items, size=n, replace=False, p=allowed / allowed.sum())
        rows.append([positive] + negatives.tolist())
    return np.asarray(rows, dtype=np.int64)


def candidate_hash(candidates, test_dataset):
    """SHA-256 over (user token, candidate item tokens): identical sets give identical hashes."""
    user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
    item_tokens = test_dataset.field2id_token[test_dataset.iid_field]
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy()
    digest = hashlib.sha256()
    for u, row in zip(users, candidates):
        digest.update(str(user_tokens[u]).encode())
        digest.update(("|".join(str(item_tokens[i]) for i in row) + "\n").encode())
    return digest.hexdigest()


def save_candidates(path, candidates, test_dataset):
    """Stored with original tokens, so the file is readable without RecBole's id mapping."""
    user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
    item_tokens = test_dataset.field2id_token[test_dataset.iid_field]
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy()
    lines = (
        json.dumps({"user": str(user_tokens[u]), "items": [str(item_tokens[i]) for i in row]})
        + "\n"
        for u, row in zip(users, candidates)
    )
    write_text_atomic(path, "".join(lines))


def read_candidate_file(path):
    """``{user token: [item tokens]}`` of a file :func:`save_candidates` wrote (positive first),
    in file order."""
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {str(r["user"]): [str(i) for i in r["items"]] for r in records}


def candidate_rows(test_dataset, candidates, start, stop):
    """An Interaction with one row per (test user, candidate), as RecBole's predict expects."""
    base = test_dataset.inter_feat[start:stop]
    width = candidates.shape[1]
    index = torch.arange(len(base)).repeat_interleave(width)
    rows = {key: value[index] for key, value in base.interaction.items()}
    rows[test_dataset.iid_field] = torch.from_numpy(candidates[start:stop].reshape(-1))
    return Interaction(rows)


def candidate_tokens(candidates, test_dataset):
    """``{user token: [item tokens]}`` of candidates in ``test_dataset``'s internal ids (None
    stays None): how they are stored, so that every model can map them to its own ids."""
    if candidates is None:
        return None
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy()
    user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
    item_tokens = test_dataset.field2id_token[test_dataset.iid_field]
    return {
        str(user_tokens[u]): [str(item_tokens[i]) for i in row] for u, row in zip(users, candidates)
    }


def candidate_ids(tokens, test_dataset):
    """The stored token candidates in this model's own internal ids, in its test-row order."""
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy()
    user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
    item_ids = test_dataset.field2token_id[test_dataset.iid_field]
    rows = []
    for u in users:
        row = tokens[str(user_tokens[u])]
        rows.append([item_ids[t] for t in row])
    ids = np.asarray(rows, dtype=np.int64)
    positives = test_dataset.inter_feat[test_dataset.iid_field].numpy()
    if not np.array_equal(ids[:, 0], positives):
        raise RuntimeError("The test targets differ between models: the split is not shared.")
    return ids
