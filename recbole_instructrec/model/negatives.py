"""Training negatives: uniform items a user has not interacted with."""

import torch


def sample_negatives(histories, positives, n_items, count, generator):
    """``count`` uniform items per row, never the positive, a history item or the padding item
    0, drawn from ``generator``."""
    negatives = []
    for history, positive in zip(histories, positives):
        excluded = set(history) | {positive, 0}
        if n_items - len(excluded) < count:
            raise ValueError(
                f"train_negatives={count} is more than the "
                f"{n_items - len(excluded)} items a user can have as negatives; lower it."
            )
        picked = []
        while len(picked) < count:
            draw = torch.randint(1, n_items, (2 * count,), generator=generator).tolist()
            for item in draw:
                if item not in excluded and len(picked) < count:
                    picked.append(item)
                    excluded.add(item)
        negatives.append(picked)
    return negatives
