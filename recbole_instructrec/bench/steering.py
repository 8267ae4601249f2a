"""Does a typed instruction steer the list? The measures of ``benchmarks/instruction_following.py``.

For each user and each asked category, the same candidate pool is ranked without an instruction
and with it; from the two top-k lists:

* the asked category's share of the top k, with and without the instruction;
* whether that share rises (the user's list moved the asked way);
* whether the user's real next item (in the pool) is in the top k, with and without the
  instruction: what steering costs the sequential task.
"""

import re

import numpy as np

from recbole_instructrec.scoring.ranking import ranked_order


def top_k(pool, scores, k):
    """The ``k`` best items of ``pool`` by ``scores`` (ties keep the pool's order)."""
    return [pool[i] for i in ranked_order(scores)[:k]]


# Instructions beyond the paper's: none has a target. Each names the property that a list
# following it has more of: a negative instruction asks for less of something, so its property
# is the absence ("nothing violent": no violent genre), and a compound one asks for both parts.
VIOLENT = {"Action", "Crime", "Horror", "Thriller", "War"}
BEYOND_THE_PAPER = [
    {
        "instruction": "nothing violent",
        "property": "no Action, Crime, Horror, Thriller or War",
        "has": lambda categories, year: not VIOLENT & set(categories),
    },
    {
        "instruction": "a comedy from the 90s",
        "property": "Comedy released 1990-1999",
        "has": lambda categories, year: "Comedy" in categories and 1990 <= (year or 0) <= 1999,
    },
]


def release_year(text):
    """The year in an item text such as "Scream (1996), Horror, Thriller"; None without one."""
    found = re.search(r"\((\d{4})\)", text)
    return int(found.group(1)) if found else None


def property_share(items, has):
    """Share of ``items`` for which ``has[item]`` is true."""
    return float(np.mean([bool(has[i]) for i in items])) if items else 0.0


def summarise(rows):
    """Per (category, phrasing set): mean share with and without the instruction, the share of
    users whose share rose, and HR@k of the real next item with and without it.

    ``rows``: dicts with category, phrasings, share_before, share_after, hit_before, hit_after
    (one per user and asked category)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["category"], row["phrasings"]), []).append(row)
    summary = []
    for (category, phrasings), group in sorted(groups.items()):
        before = np.array([r["share_before"] for r in group])
        after = np.array([r["share_after"] for r in group])
        summary.append(
            {
                "category": category,
                "phrasings": phrasings,
                "users": len(group),
                "share_before": round(float(before.mean()), 4),
                "share_after": round(float(after.mean()), 4),
                "users_whose_share_rises": round(float((after > before).mean()), 4),
                "hit_before": round(float(np.mean([r["hit_before"] for r in group])), 4),
                "hit_after": round(float(np.mean([r["hit_after"] for r in group])), 4),
            }
        )
    return summary
