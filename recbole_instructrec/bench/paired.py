"""Paired statistics of two rows scored on the same users and the same candidates.

Each user contributes one hit@1 and one ndcg@5 per row, so two rows differ user by user. The
difference of the means gets a paired bootstrap 95 % interval (users resampled together,
scipy's percentile bootstrap). The tests are the paired ones for each kind of value: McNemar's
exact test for hit@1 (only users on whom the rows disagree carry information) and the Wilcoxon
signed-rank test for ndcg@5. A difference counts as a win or a loss only when its interval
excludes zero; otherwise it is "no measurable difference".
"""

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_interval(differences, seed=0):
    """Percentile bootstrap interval of the mean of per-user differences."""
    differences = np.asarray(differences, dtype=np.float64)
    if np.all(differences == differences[0]):  # no spread: the interval is the point
        return float(differences[0]), float(differences[0])
    result = stats.bootstrap(
        (differences,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(hits_a, hits_b):
    """(users only a hits, users only b hits, two-sided exact p)."""
    hits_a, hits_b = np.asarray(hits_a, bool), np.asarray(hits_b, bool)
    only_a, only_b = int((hits_a & ~hits_b).sum()), int((~hits_a & hits_b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def wilcoxon_p(values_a, values_b):
    """Two-sided Wilcoxon signed-rank p of paired values (1.0 when they never differ)."""
    differences = np.asarray(values_a, np.float64) - np.asarray(values_b, np.float64)
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="wilcox").pvalue)


def compare(per_user_a, per_user_b, seed=0):
    """Row a against row b: per metric, the difference of means with its paired 95 % interval,
    the paired test's p and the verdict. ``per_user_*`` map "hit@1" / "ndcg@5" to arrays over
    the same users in the same order."""
    result = {}
    for metric, values_a in per_user_a.items():
        values_b = per_user_b[metric]
        if len(values_a) != len(values_b):
            raise ValueError(f"{metric}: the rows hold different numbers of users")
        low, high = bootstrap_interval(np.subtract(values_a, values_b), seed)
        entry = {
            "difference": float(np.mean(values_a) - np.mean(values_b)),
            "ci95": [low, high],
            "verdict": verdict(low, high),
        }
        if metric.startswith("hit"):
            only_a, only_b, p = mcnemar_exact(values_a, values_b)
            entry.update(test="McNemar exact", p=p, only_a_hits=only_a, only_b_hits=only_b)
        else:
            entry.update(test="Wilcoxon signed-rank", p=wilcoxon_p(values_a, values_b))
        result[metric] = entry
    return result


def verdict(low, high):
    if low > 0:
        return "win"
    if high < 0:
        return "loss"
    return "no measurable difference"
