"""Amazon Review Data 2018 (Ni, Li and McAuley) -> RecBole atomic files with item titles.

Inputs are the public per-category files, e.g. ``Video_Games_5.json.gz`` (reviews: one JSON
object per line with ``reviewerID``, ``asin``, ``unixReviewTime``) and ``meta_Video_Games.json.gz``
(metadata: ``asin``, ``title``, ``category``, ``brand``). Output: ``<out>/<name>/<name>.inter``
(``user_id``, ``item_id``, ``timestamp``) and ``<name>.item`` (``item_id``, ``title``,
``categories``, ``brand``), after dropping items without a title and an iterative k-core filter.

    instructrec convert-amazon --reviews Video_Games_5.json.gz --meta meta_Video_Games.json.gz \\
        --name amazon-games --out dataset
"""

import gzip
import html
import json
import os
import re
from collections import Counter


def _lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def _clean(text):
    text = re.sub(r"<[^>]+>", " ", html.unescape(str(text)))
    return re.sub(r"\s+", " ", text).replace("\t", " ").strip()


def convert(reviews, meta, out, name, k_core=5):
    """Write the atomic files; returns (users, items, interactions) after filtering."""
    items = {}
    for record in _lines(meta):
        title = _clean(record.get("title", ""))
        if title and len(title) < 300:  # very long "titles" in the dump are scraped HTML
            categories = [_clean(c) for c in record.get("category", []) if _clean(c)]
            items[record["asin"]] = (
                title,
                " ".join(c.replace(" ", "_") for c in categories[1:4]),
                _clean(record.get("brand", "")),
            )
    events = {}
    for record in _lines(reviews):
        if record.get("asin") in items and record.get("reviewerID"):
            key = (record["reviewerID"], record["asin"])
            events[key] = min(events.get(key, float("inf")), int(record.get("unixReviewTime", 0)))
    pairs = list(events.items())
    while True:  # iterative k-core: both users and items keep at least k interactions
        users = Counter(u for (u, _), _ in pairs)
        counts = Counter(i for (_, i), _ in pairs)
        kept = [p for p in pairs if users[p[0][0]] >= k_core and counts[p[0][1]] >= k_core]
        if len(kept) == len(pairs):
            break
        pairs = kept
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    pairs.sort(key=lambda p: (p[0][0], p[1], p[0][1]))
    with open(os.path.join(folder, f"{name}.inter"), "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for (user, item), when in pairs:
            f.write(f"{user}\t{item}\t{when}\n")
    used = sorted({i for (_, i), _ in pairs})
    with open(os.path.join(folder, f"{name}.item"), "w", encoding="utf-8") as f:
        f.write("item_id:token\ttitle:token_seq\tcategories:token_seq\tbrand:token\n")
        for item in used:
            title, categories, brand = items[item]
            f.write(f"{item}\t{title}\t{categories}\t{brand}\n")
    return len({u for (u, _), _ in pairs}), len(used), len(pairs)
