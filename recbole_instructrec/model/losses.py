"""The training losses, shared by both layouts (one prompt per prefix, and the running list).

* :func:`listwise_loss`: the positive (column 0) against its sampled negatives, a softmax
  cross-entropy at ``ranking_temperature``;
* :func:`positive_logprob`: the positives' mean per-token log-likelihood (the paper's generation
  objective; a loss subtracts it, weighted by ``lm_loss_weight``);
* :func:`catalogue_loss`: the item head's cross-entropy over the whole catalogue, each task's
  signals averaged on their own.
"""

import torch
import torch.nn.functional as F


def listwise_loss(scores, temperature):
    """(n, 1 + negatives) scores, the positive first -> the mean cross-entropy of the positive."""
    target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores / temperature, target)


def positive_logprob(sums, counts):
    """Mean over signals of the positive's (each signal's first continuation's) log-prob per
    token; ``sums`` and ``counts`` hold one tensor per signal."""
    return torch.stack([s[0] / c[0].clamp(min=1) for s, c in zip(sums, counts)]).mean()


def catalogue_loss(logits, targets, search, request_weight):
    """Cross-entropy over the catalogue: the sequential signals' mean plus ``request_weight``
    times the search signals' (``search``, a mask) mean. A request row holds one search signal
    among up to 50 sequential ones, so one mean over all signals would give the request a
    fiftieth of the weight, and the head learns to ignore it."""
    losses = F.cross_entropy(logits, targets, reduction="none")
    loss = losses[~search].mean() if bool((~search).any()) else losses.new_zeros(())
    if bool(search.any()):
        loss = loss + request_weight * losses[search].mean()
    return loss
