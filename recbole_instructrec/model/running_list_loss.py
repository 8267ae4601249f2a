"""InstructRec's training loss in the running-list layout: every position of a window at once.

A training row of RecBole (a history and its next item) becomes the list of its last
``max_history_items`` items and that next item; each position after the first is a training
signal, its positive being the item written there and its negatives ``train_negatives`` uniform
items scored as continuations of the same prefix. One forward pass gives all of them
(``ContinuationScorer.score_running_lists``). The loss per signal is the instruction layout's:
a listwise cross-entropy over (positive, negatives) and the positive's generation loss, or with
``train_negatives: 0`` the generation loss alone: a plain causal pass over the list.

``train_negative_positions: k`` gives negatives (and the listwise term) to only ``k`` positions
of each row, drawn at random; every position keeps its generation loss. Negatives are most of
a row's tokens (about 52 of a signal's 70 with 4 of them), so this buys about three times the
signals in the same time while keeping some of the ranking loss (docs/results.md, "a mixed
objective").
"""

import torch
import torch.nn.functional as F


def running_list_loss(model, histories, positives):
    """Mean loss over every position of the rows (``histories[i]`` then ``positives[i]``), and
    how many positions (training signals) that is."""
    pick = torch.randint(len(model.train_templates), (1,), generator=model.template_generator)
    builder = model._builder(model.train_templates[int(pick)])
    rows = [builder.training_row(h + [p]) for h, p in zip(histories, positives)]
    rows = [row for row in rows if row.cuts]
    negatives = [
        [[builder.piece(n) for n in items] for items in row_negatives]
        for row_negatives in sampled_negatives(model, rows)
    ]
    scored = model.scorer.score_running_lists(rows, negatives)
    signals = len(scored.logprob_sums)
    generation = torch.stack(
        [s[0] / c[0].clamp(min=1) for s, c in zip(scored.logprob_sums, scored.token_counts)]
    ).mean()
    if model.generation_only:  # train_negatives: 0, the paper's objective
        return -generation, signals
    ranked = [i for i, s in enumerate(scored.logprob_sums) if len(s) > 1]
    sums = torch.stack([scored.logprob_sums[i] for i in ranked])
    counts = torch.stack([scored.token_counts[i] for i in ranked])
    scores = builder._normalized(sums, counts)
    target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    loss = F.cross_entropy(scores / model.ranking_temperature, target)
    if model.lm_loss_weight:
        loss = loss - model.lm_loss_weight * generation
    return loss, signals


def sampled_negatives(model, rows):
    """The negative items at each position of each running-list row, drawn as the loss draws
    them: every row's samples first, then (``train_negative_positions``) each row's kept
    positions, the others left empty."""
    negatives = [model._sample_negatives(row.histories, row.items) for row in rows]
    if model.train_negative_positions is None:
        return negatives
    return [
        _only_at_some_positions(row_negatives, model.train_negative_positions, model)
        for row_negatives in negatives
    ]


def _only_at_some_positions(row_negatives, count, model):
    """The row's negatives kept at ``count`` random positions, emptied at the others."""
    keep = set(
        torch.randperm(len(row_negatives), generator=model.negative_generator)[:count].tolist()
    )
    return [n if k in keep else [] for k, n in enumerate(row_negatives)]
