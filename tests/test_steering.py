"""The measures of benchmarks/instruction_following.py, on hand-made lists."""

from recbole_instructrec.bench.steering import category_share, summarise, top_k

CATEGORIES = {1: ["Horror"], 2: ["Comedy"], 3: ["Horror", "Thriller"], 4: ["Drama"]}


def test_top_k_and_shares():
    assert top_k([1, 2, 3, 4], [0.1, 0.9, 0.5, 0.9], 2) == [2, 4]  # ties keep the pool's order
    assert category_share([1, 2, 3, 4], CATEGORIES, "Horror") == 0.5
    assert category_share([], CATEGORIES, "Horror") == 0.0


def _row(before, after, hit_before, hit_after, phrasings="trained"):
    return {
        "category": "Horror",
        "phrasings": phrasings,
        "share_before": category_share(before, CATEGORIES, "Horror"),
        "share_after": category_share(after, CATEGORIES, "Horror"),
        "hit_before": hit_before,
        "hit_after": hit_after,
    }


def test_summary_counts_users_whose_share_rises_and_the_cost():
    rows = [
        _row([2, 4], [1, 3], True, False),  # rises from 0 to 1, loses the real item
        _row([1, 2], [1, 2], True, True),  # unchanged: not a rise
        _row([1, 3], [2, 4], False, False),  # falls
        _row([2, 4], [2, 4], True, True, phrasings="held out"),
    ]
    trained, held_out = sorted(summarise(rows), key=lambda s: s["phrasings"] != "trained")
    assert trained["users"] == 3 and held_out["users"] == 1
    assert trained["users_whose_share_rises"] == round(1 / 3, 4)
    assert trained["share_before"] == 0.5 and trained["share_after"] == 0.5
    assert trained["hit_before"] == round(2 / 3, 4) and trained["hit_after"] == round(1 / 3, 4)
    assert held_out["users_whose_share_rises"] == 0.0
