"""The paper's instruction tasks as benchmark tasks, and the category rule they must beat.

Every task scores the same stored candidates as the sequential task; only the instruction
differs (Zhang et al., Tables 7 and 8):

========================  ==========  ===========================================
task                      template    the instruction
========================  ==========  ===========================================
sequential                seq-list    P1 I0: the history alone
psearch-specific          psearch-    P1 I2: the history, then the target's
                          list        category words
psearch-vague             vague-list  P1 I1: the history, then a vague wish for one of
                                      the target's categories (trained phrasings)
psearch-vague-held-out    vague-list  the same with phrasings training never sees
psearch-preference        explicit-   P1 P2: the history, then an explicit preference
                          list        (a summary of the history; no word of the target)
product-search            search-     P0 I2: the target's category words, no history
                          list
========================  ==========  ===========================================

The **category rule** stands in for the paper's TEM and DSSM: it ranks the candidates by the
Jaccard overlap of their categories with the words of the request, ties broken by SASRec's
score (ties of both stay ties, and the ranking rule counts them against the positive). It
reads the words of I2 only; for I1 and P2 it has nothing but SASRec.
"""

import csv
import os

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from recbole_instructrec.prompts.intentions import CATEGORY_FIELDS
from recbole_instructrec.prompts.item_text import clean_text

# task -> (template, held-out phrasings, does the category rule read the request's words)
TASKS = {
    "sequential": ("seq-list", False, False),
    "psearch-specific": ("psearch-list", False, True),
    "psearch-vague": ("vague-list", False, False),
    "psearch-vague-held-out": ("vague-list", True, False),
    "psearch-preference": ("explicit-list", False, False),
    "product-search": ("search-list", False, True),
}
RULE_ROW = "CategoryRule"
# Below the smallest gap between two different Jaccard values of category sets of fewer than
# 30 words (1/30**2), so a tie-break never overturns an overlap.
_TIE_BREAK_SCALE = 1e-3


def parse_tasks(text):
    """A comma-separated list of task names, checked."""
    tasks = [t.strip() for t in str(text).split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(
            f"--tasks {text!r} names {unknown or 'no task'}; use some of {', '.join(TASKS)}."
        )
    return tasks


def jaccard(a, b):
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


def category_rule_scores(candidate_categories, wanted, tie_scores):
    """Scores (users x candidates) of the category rule: the Jaccard overlap of each
    candidate's categories with the user's ``wanted`` words, then ``tie_scores`` (SASRec's)
    among candidates of equal overlap.

    ``candidate_categories[u][c]`` lists candidate c's words for user u; ``wanted[u]`` lists
    the request's words (empty: the rule has only the tie-break)."""
    tie_scores = np.asarray(tie_scores, dtype=np.float64)
    scores = np.empty_like(tie_scores)
    width = tie_scores.shape[1]
    for u, (categories, words) in enumerate(zip(candidate_categories, wanted)):
        overlap = np.array([jaccard(c, words) for c in categories])
        # ranks of the tie-break within the row, from 0 to just under 1; equal scores stay equal
        tie_rank = (rankdata(tie_scores[u], method="average") - 1) / width
        scores[u] = overlap + _TIE_BREAK_SCALE * tie_rank
    return scores


def categories_by_token(dataset_path, dataset_name, field=None, separator=" "):
    """{item token: category words} from a dataset's atomic .item file (``field`` or the first
    of class/genre/genres/categories/category), or None when it has none."""
    path = os.path.join(dataset_path, f"{dataset_name}.item")
    if not os.path.isfile(path):
        return None
    header = pd.read_csv(path, sep="\t", nrows=0, quoting=csv.QUOTE_NONE).columns
    by_field = {column.split(":")[0]: column for column in header}
    field = field or next((f for f in CATEGORY_FIELDS if f in by_field), None)
    if field is None or field not in by_field:
        return None
    frame = pd.read_csv(
        path,
        sep="\t",
        usecols=[by_field["item_id"], by_field[field]],
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        encoding="utf-8",
        encoding_errors="replace",
    )
    return {
        item: [w.replace("_", " ") for w in clean_text(value).split(separator) if w]
        for item, value in zip(frame[by_field["item_id"]], frame[by_field[field]])
    }


def rule_scores_from_records(sasrec_records, categories, reads_words):
    """The category rule's score records from SASRec's stored score records (same users, same
    candidates, positive first): the request's words are the positive's categories where the
    task's request names them (I2), none otherwise."""
    candidate_categories = [[categories.get(i, []) for i in r["items"]] for r in sasrec_records]
    wanted = [c[0] if reads_words else [] for c in candidate_categories]
    scores = category_rule_scores(
        candidate_categories, wanted, [r["scores"] for r in sasrec_records]
    )
    return [
        {"user": r["user"], "items": r["items"], "scores": [round(float(x), 6) for x in s]}
        for r, s in zip(sasrec_records, scores)
    ]
