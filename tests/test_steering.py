"""The measures of benchmarks/instruction_following.py, on hand-made lists."""

from recbole_instructrec.bench.steering import property_share, summarise, top_k

CATEGORIES = {1: ["Horror"], 2: ["Comedy"], 3: ["Horror", "Thriller"], 4: ["Drama"]}
HORROR = {item: "Horror" in categories for item, categories in CATEGORIES.items()}


def test_top_k_and_shares():
    assert top_k([1, 2, 3, 4], [0.1, 0.9, 0.5, 0.9], 2) == [2, 4]  # ties keep the pool's order
    assert property_share([1, 2, 3, 4], HORROR) == 0.5
    assert property_share([], HORROR) == 0.0


def _row(before, after, hit_before, hit_after, phrasings="trained"):
    return {
        "category": "Horror",
        "phrasings": phrasings,
        "share_before": property_share(before, HORROR),
        "share_after": property_share(after, HORROR),
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


def test_the_instructions_beyond_the_paper_name_their_properties():
    from recbole_instructrec.bench.steering import BEYOND_THE_PAPER, property_share, release_year

    texts = {
        1: ("Scream (1996), Horror, Thriller", ["Horror", "Thriller"]),
        2: ("Clueless (1995), Comedy, Romance", ["Comedy", "Romance"]),
        3: ("Annie Hall (1977), Comedy, Romance", ["Comedy", "Romance"]),
        4: ("Untitled", ["Drama"]),
    }
    assert [release_year(t) for t, _ in texts.values()] == [1996, 1995, 1977, None]
    peaceful, nineties_comedy = BEYOND_THE_PAPER
    has = {i: peaceful["has"](c, release_year(t)) for i, (t, c) in texts.items()}
    assert has == {1: False, 2: True, 3: True, 4: True}
    assert property_share([1, 2], has) == 0.5
    has = {i: nineties_comedy["has"](c, release_year(t)) for i, (t, c) in texts.items()}
    assert has == {1: False, 2: True, 3: False, 4: False}  # Annie Hall is a 70s comedy
