"""Intention and explicit-preference text, built from the dataset alone (no external LLM).

* I2, specific: the category words of the target item (``item_category_field``, by default the
  first of ``class``, ``genre``, ``genres``, ``categories``, ``category`` the items have).
* I1, vague: a short wish for one of the target's categories through ``vague_intentions.yaml``
  (e.g. Comedy -> "something that makes me laugh"); categories not in the table give
  "something in the {category} spirit". Each category has several phrasings: training draws
  from its ``trained`` ones, and ``held_out`` ones are only read by evaluation that asks for
  them, so a benchmark can tell generalization from a memorised table.
* P2, explicit: the user's own text field if ``user_preference_field`` names one, otherwise a
  summary of the history: "I mostly enjoy Comedy, Drama and Romance." (its most frequent
  categories). Built from the history only, so it never reveals the target.

I1 and I2 read the *target* item on purpose: they model a user who says what they want, which is
what the paper's product search and personalized search tasks are. Sequential recommendation
templates (P1 + I0) never use them.
"""

import hashlib
import os
from collections import Counter
from dataclasses import dataclass

import yaml

from recbole_instructrec.prompts.item_text import _raw_columns, _recbole_columns, clean_text

CATEGORY_FIELDS = ("class", "genre", "genres", "categories", "category")
VAGUE_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vague_intentions.yaml")


class IntentionError(ValueError):
    """A template needs a slot this dataset cannot fill; the message names both."""


def item_categories(config, dataset):
    """List (per internal item id) of category word lists, or None if there is no such field."""
    field = config["item_category_field"]
    available = [] if dataset.item_feat is None else list(dataset.item_feat.columns)
    if field is None:
        field = next((f for f in CATEGORY_FIELDS if f in available), None)
        if field is None:
            return None
    elif field not in available:
        raise IntentionError(
            f"item_category_field={field!r} is not an item field of dataset "
            f"'{dataset.dataset_name}'; its item fields are {available}."
        )
    columns = _raw_columns(dataset, [field]) or _recbole_columns(dataset, [field])
    separator = dataset.config["seq_separator"]
    tokens = dataset.field2id_token[dataset.iid_field]
    result = []
    for token in tokens:
        raw = clean_text(columns[field].get(str(token), ""))
        result.append([w.replace("_", " ") for w in raw.split(separator) if w])
    return result


@dataclass(frozen=True)
class Phrasings:
    """The ways to say one vague wish: those training draws from, and those it never sees."""

    trained: tuple
    held_out: tuple = ()


def load_vague_table(path=None):
    """{category (lower case): Phrasings}; a plain string value is one trained phrasing."""
    with open(path or VAGUE_TABLE, encoding="utf-8") as f:
        table = yaml.safe_load(f) or {}
    return {str(k).lower(): _phrasings(k, v, path or VAGUE_TABLE) for k, v in table.items()}


def _phrasings(key, value, path):
    if isinstance(value, str):
        return Phrasings((value,))
    if isinstance(value, dict) and isinstance(value.get("trained"), list) and value["trained"]:
        return Phrasings(
            tuple(str(v) for v in value["trained"]),
            tuple(str(v) for v in value.get("held_out") or ()),
        )
    raise IntentionError(
        f"{path}: category {key!r} must map to a phrasing or to "
        "{trained: [at least one phrasing], held_out: [phrasings]}; got " + repr(value)
    )


def stable_draw(*parts):
    """A deterministic integer from ``parts`` (the same user always gets the same wording)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


class IntentionSource:
    """Fills the {intention} and {preference} slots for a user and (for I1/I2) a target."""

    def __init__(self, categories, vague_table, user_texts=None):
        self.categories = categories
        self.vague_table = vague_table
        self.user_texts = user_texts

    def check_fillable(self, template):
        """Raise at start if ``template`` needs text this dataset cannot give."""
        if template.intention in ("I1", "I2") and self.categories is None:
            self._categories_of(0, f"{template.intention} intention (template {template.id!r})")
        if template.preference == "P2":
            self.explicit_preference([], None)

    def specific(self, target):
        words = self._categories_of(target, "I2 (specific intention)")
        return ", ".join(words) if words else "anything"

    def vague(self, target, draw=None, held_out=False):
        """A vague wish for the target: without ``draw``, its first category's first trained
        phrasing; with it, a category and a phrasing picked by ``draw`` (an integer), from the
        held-out phrasings if ``held_out`` (trained ones where a category has none)."""
        words = self._categories_of(target, "I1 (vague intention)")
        if not words:
            return "something good"
        word = words[0] if draw is None else words[draw % len(words)]
        phrasings = self.vague_table.get(word.lower())
        if phrasings is None:
            return f"something in the {word} spirit"
        pool = (held_out and phrasings.held_out) or phrasings.trained
        return pool[0] if draw is None else pool[(draw // len(words)) % len(pool)]

    def explicit_preference(self, history, user=None):
        if self.user_texts is not None and user is not None and self.user_texts[user]:
            return self.user_texts[user]
        if self.categories is None and self.user_texts is None:
            raise IntentionError(
                "A P2 (explicit preference) template needs either user_preference_field (a "
                "user text field) or item categories (item_category_field); this dataset has "
                "neither. Pick a P0/P1 template or set one of the two."
            )
        if self.categories is None:
            return "I have no strong preference yet."
        counts = Counter(w for item in history for w in self.categories[item])
        top = [w for w, _ in counts.most_common(3)]
        if not top:
            return "I have no strong preference yet."
        listed = top[0] if len(top) == 1 else ", ".join(top[:-1]) + " and " + top[-1]
        return f"I mostly enjoy {listed}."

    def _categories_of(self, item, what):
        if self.categories is None:
            raise IntentionError(
                f"A template with {what} needs item category words, but this dataset has no "
                f"category field ({', '.join(CATEGORY_FIELDS)}). Set item_category_field to "
                "an item field that holds categories, or pick a template without an intention."
            )
        return self.categories[int(item)]


def request_slots(
    source, template, history, target, user=None, draw=None, held_out=False, typed=None
):
    """The {intention} and {preference} values of ``template`` for a user who wants ``target``
    (or who typed ``typed``), from ``source`` (an :class:`IntentionSource`): the only place a
    search task reads the target."""
    slots = {}
    if typed is not None and template.intention != "I0":
        slots["intention"] = typed
    elif template.intention == "I2":
        slots["intention"] = source.specific(target)
    elif template.intention == "I1":
        slots["intention"] = source.vague(target, draw, held_out)
    if template.preference == "P2":
        slots["preference"] = source.explicit_preference(history, user)
    return slots


def user_texts(config, dataset):
    """List (per internal user id) of the ``user_preference_field`` text, or None if unset."""
    field = config["user_preference_field"]
    if not field:
        return None
    user_feat = dataset.user_feat
    if user_feat is None or field not in user_feat.columns:
        available = [] if user_feat is None else list(user_feat.columns)
        raise IntentionError(
            f"user_preference_field={field!r} is not a user field of dataset "
            f"'{dataset.dataset_name}'; its user fields are {available or 'none (no .user file)'}."
        )
    vocab = dataset.field2id_token.get(field)
    separator = dataset.config["seq_separator"]
    texts = [""] * dataset.user_num
    for uid, value in zip(user_feat[dataset.uid_field].tolist(), user_feat[field].tolist()):
        if vocab is None:
            text = str(value)
        elif isinstance(value, list):
            text = separator.join(vocab[int(t)] for t in value if int(t))
        else:
            text = str(vocab[int(value)]) if int(value) else ""
        texts[int(uid)] = clean_text(text)
    return texts
