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

``train_request_templates`` and ``train_request_share`` mix the paper's search tasks into the
same pass: a drawn share of rows ends with a request built from that row's next item (its
category words, a trained phrasing of a vague wish, or the history's explicit preference), and
that row's last signal is a search signal; its other positions stay sequential. A request row
always gives its search signal the negatives, so the listwise term teaches the model to prefer
the item that matches what was asked.

The losses read only what they need, not the model: a :class:`RowSource` (templates and
requests), the scorer, and the head's own settings (:class:`LikelihoodLoss`, or the item head
and its weights).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from recbole_instructrec.model.losses import catalogue_loss, listwise_loss, positive_logprob
from recbole_instructrec.prompts import intentions


@dataclass
class RowSource:
    """What turns a batch of RecBole's training rows into running-list rows: the templates a
    batch draws from (one per batch) and the search requests mixed in."""

    builder_of: Callable  # a template -> its prompt builder
    templates: list
    template_generator: torch.Generator
    intentions: object  # an IntentionSource: what a request says of its target
    request_share: float = 0.0
    request_templates: tuple = ()
    request_generator: torch.Generator = None

    def rows(self, histories, positives, users=None):
        """The batch's drawn builder and its rows that predict something."""
        pick = torch.randint(len(self.templates), (1,), generator=self.template_generator)
        builder = self.builder_of(self.templates[int(pick)])
        users = users or [None] * len(histories)
        rows = [self.row(builder, h, p, u) for h, p, u in zip(histories, positives, users)]
        return builder, [row for row in rows if row.cuts]

    def row(self, builder, history, positive, user=None):
        """A sequential row, or (``request_share`` of the time) a row whose last item answers
        a search request for it."""
        if not self.request_share:
            return builder.training_row(history + [positive])
        draw = torch.randint(2**31 - 1, (3,), generator=self.request_generator).tolist()
        if draw[0] >= self.request_share * (2**31 - 1):
            return builder.training_row(history + [positive])
        template = self.request_templates[draw[1] % len(self.request_templates)]
        request_builder = self.builder_of(template)
        slots = intentions.request_slots(
            self.intentions,
            template,
            request_builder._recent(history),
            positive,
            user,
            draw=draw[2],
        )
        row = request_builder.training_row(history + [positive], **slots)
        row.requested = True
        return row


@dataclass
class NegativeDraw:
    """The likelihood head's negatives at each position of each row."""

    sample: Callable  # (histories, positives) -> negatives per position
    positions: int = None  # train_negative_positions: None = every position
    generator: torch.Generator = None

    def __call__(self, rows):
        """Every row's samples first, then (``positions``) each row's kept positions, the
        others left empty."""
        negatives = [self.sample(row.histories, row.items) for row in rows]
        if self.positions is None:
            return negatives
        return [self._at_some_positions(n, row.requested) for row, n in zip(rows, negatives)]

    def _at_some_positions(self, row_negatives, requested=False):
        """The row's negatives kept at ``positions`` random positions, emptied at the others;
        a request row always keeps them at its last position (its search signal)."""
        order = torch.randperm(len(row_negatives), generator=self.generator).tolist()
        if requested:
            last = len(row_negatives) - 1
            order = [last] + [k for k in order if k != last]
        keep = set(order[: self.positions])
        return [n if k in keep else [] for k, n in enumerate(row_negatives)]


@dataclass
class LikelihoodLoss:
    """The likelihood head's running-list loss settings."""

    draw: NegativeDraw
    generation_only: bool  # train_negatives: 0, the paper's objective
    ranking_temperature: float
    lm_loss_weight: float


def running_list_loss(source, scorer, loss_settings, histories, positives, users=None):
    """Mean loss over every position of the rows (``histories[i]`` then ``positives[i]``, made
    by ``source``, scored by ``scorer``), and how many positions (training signals) that is."""
    builder, rows = source.rows(histories, positives, users)
    negatives = [
        [[builder.piece(n) for n in items] for items in row_negatives]
        for row_negatives in loss_settings.draw(rows)
    ]
    scored = scorer.score_running_lists(rows, negatives)
    signals = len(scored.logprob_sums)
    generation = positive_logprob(scored.logprob_sums, scored.token_counts)
    if loss_settings.generation_only:
        return -generation, signals
    ranked = [i for i, s in enumerate(scored.logprob_sums) if len(s) > 1]
    sums = torch.stack([scored.logprob_sums[i] for i in ranked])
    counts = torch.stack([scored.token_counts[i] for i in ranked])
    loss = listwise_loss(builder._normalized(sums, counts), loss_settings.ranking_temperature)
    if loss_settings.lm_loss_weight:
        loss = loss - loss_settings.lm_loss_weight * generation
    return loss, signals


def item_head_loss(
    source,
    scorer,
    head,
    histories,
    positives,
    users=None,
    request_weight=1.0,
    lm_loss_weight=0,
    reader=None,
):
    """The item head's loss over the rows' every position, from one pass: cross-entropy over
    the whole catalogue, minus ``lm_loss_weight`` times the positives' generation log-prob
    (per token); and how many positions (training signals) that is. ``train_negatives`` plays
    no part: the softmax already compares the positive with every item. A request row's last
    position is a search signal, weighed by ``request_weight`` (:func:`catalogue_loss`); with
    a ``reader`` (``item_head_request_vectors``) that position alone also reads the request's
    words."""
    _, rows = source.rows(histories, positives, users)
    lengths = [row.lengths for row in rows] if lm_loss_weight else None
    states, sums, counts = scorer.states_before(
        [row.ids for row in rows], [row.cuts for row in rows], lengths
    )
    states = torch.cat(states)
    # each position's row, and whether it is that row's search signal
    positions = [
        (row, row.requested and k == len(row.items) - 1)
        for row in rows
        for k in range(len(row.items))
    ]
    requests = None
    if reader is not None:
        asked = [row.request_text if searched else None for row, searched in positions]
        requests = reader(asked, states.device)
    logits = head(states, requests)
    targets = torch.tensor([i for row in rows for i in row.items], device=logits.device)
    search = torch.tensor([searched for _, searched in positions], device=logits.device)
    loss = catalogue_loss(logits, targets, search, request_weight)
    if lm_loss_weight:
        generation = torch.cat([s / c.clamp(min=1) for s, c in zip(sums, counts)]).mean()
        loss = loss - lm_loss_weight * generation
    return loss, len(targets)
