"""Scoring a trained model on the benchmark's test users: on the stored candidates (sampled
protocols), or over every item (full ranking), by the one ranking rule of
:mod:`..scoring.ranking`."""

import numpy as np
import torch
from tqdm import tqdm

from recbole_instructrec.bench import candidates as cand
from recbole_instructrec.bench import cold_items
from recbole_instructrec.bench.score_files import write_score_file
from recbole_instructrec.scoring.ranking import ranking_metrics, target_ranks


def save_scores(path, scores, ids, test_dataset):
    """Per test user: its candidates (tokens, positive first) and this model's scores."""
    users = test_dataset.inter_feat[test_dataset.uid_field].numpy()
    user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
    item_tokens = test_dataset.field2id_token[test_dataset.iid_field]
    records = (
        {
            "user": str(user_tokens[u]),
            "items": [str(item_tokens[i]) for i in row],
            "scores": [round(float(x), 6) for x in score],
        }
        for u, row, score in zip(users, ids, scores)
    )
    write_score_file(path, records)


@torch.no_grad()
def sampled_scores(model, test_dataset, ids, eval_batch_size):
    model.eval()
    width = ids.shape[1]
    users_per_batch = max(int(eval_batch_size) // width, 1)
    # A fused InstructRec also hands back its LLM's own scores, reported as a row of their own.
    fused = bool(getattr(model, "fusion_model", None)) and hasattr(model, "predict_parts")
    scores, llm_scores = [], []
    for start in tqdm(range(0, len(ids), users_per_batch), desc="  evaluate", ncols=100):
        stop = min(start + users_per_batch, len(ids))
        rows = cand.candidate_rows(test_dataset, ids, start, stop).to(model.device)
        if fused:
            batch_scores, batch_llm_scores = model.predict_parts(rows)
            llm_scores.append(batch_llm_scores.view(-1, width).float().cpu().numpy())
        else:
            batch_scores = model.predict(rows)
        scores.append(batch_scores.view(-1, width).float().cpu().numpy())
    return np.concatenate(scores), (np.concatenate(llm_scores) if fused else None)


@torch.no_grad()
def full_ranks(model, test_dataset, test_loader, config):
    model.eval()
    ranks = []
    iid = test_dataset.iid_field
    seq_field = iid + config["LIST_SUFFIX"]
    batch = max(int(config["eval_batch_size"]) // 10, 1)
    n = len(test_dataset.inter_feat)
    for start in tqdm(range(0, n, batch), desc="  evaluate (full)", ncols=100):
        rows = test_dataset.inter_feat[start : min(start + batch, n)].to(model.device)
        scores = model.full_sort_predict(rows).float()
        scores[:, 0] = -np.inf
        history = rows[seq_field]
        target = rows[iid]
        target_scores = scores.gather(1, target[:, None]).clone()
        scores.scatter_(1, history, -np.inf)  # already-seen items are not recommended
        scores.scatter_(1, target[:, None], target_scores)
        ranks.append(target_ranks(scores, target))
    return np.concatenate(ranks)


def cold_test_users(test_dataset, train_counts):
    """Which test users' targets are cold items (few training interactions)."""
    item_tokens = test_dataset.field2id_token[test_dataset.iid_field]
    targets = item_tokens[test_dataset.inter_feat[test_dataset.iid_field].numpy()]
    return cold_items.cold_mask(targets, train_counts)


def rank_summary(ranks, ks, cold):
    """A row's metrics over every test user and over the cold slice (``cold``: a mask)."""
    return {
        "metrics": ranking_metrics(ranks, ks),
        "n_test_users": int(len(ranks)),
        "cold_slice": {
            "max_train_interactions": cold_items.COLD_MAX_TRAIN_INTERACTIONS,
            "n_test_users": int(cold.sum()),
            "metrics": ranking_metrics(ranks[cold], ks),
        },
    }
