"""The text of every item, as its author wrote it, indexed by RecBole's internal item id.

RecBole splits ``token_seq`` fields (ml-100k's ``movie_title``, Amazon's ``title``) into word
tokens and stores token ids, so re-joining ids loses spacing, punctuation runs and HTML
entities. We read the fields straight from the dataset's atomic ``.item`` file, keyed by the
original item token, and fall back to re-joining RecBole's tokens only when that file is not on
disk. HTML entities such as ``&amp;`` are decoded and whitespace is collapsed.
"""

import csv
import html
import os
import re
from logging import getLogger

import numpy as np
import pandas as pd
from recbole.utils import FeatureType

TITLE_LIKE_FIELDS = ("title", "movie_title", "name", "item_name", "product_name")
# Appended in parentheses after the title when present, e.g. "Toy Story (1995)".
QUALIFIER_FIELDS = ("release_year", "year")
TEXT_TYPES = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ, FeatureType.FLOAT)


class ItemTextError(ValueError):
    """The dataset cannot give items a text; the message names the fields it has."""


def item_text_fields(config, dataset):
    """The fields that make an item's text: ``item_text_fields`` or a title-like default."""
    available = _item_fields(dataset)
    wanted = config["item_text_fields"] if "item_text_fields" in config else None
    if wanted:
        if isinstance(wanted, str):
            wanted = [wanted]
        missing = [f for f in wanted if f not in available]
        if missing:
            raise ItemTextError(
                f"item_text_fields={list(wanted)} names {missing}, which the item features of "
                f"dataset '{dataset.dataset_name}' do not have. Its item fields are "
                f"{available or 'none'}. Set item_text_fields to some of them (and make sure "
                "load_col loads them)."
            )
        return list(wanted)
    title = next((f for f in TITLE_LIKE_FIELDS if f in available), None)
    if title is None:
        raise ItemTextError(
            f"Dataset '{dataset.dataset_name}' has no title-like item field "
            f"({', '.join(TITLE_LIKE_FIELDS)}), and InstructRec needs item text to build "
            f"instructions. Its item fields are {available or 'none (no .item file loaded)'}. "
            "Set item_text_fields to the fields that describe an item, or add a .item file "
            "with a title column."
        )
    return [title] + [f for f in QUALIFIER_FIELDS if f in available]


def item_texts(dataset, fields):
    """List of texts, one per internal item id (index 0, RecBole's padding, is '')."""
    tokens = dataset.field2id_token[dataset.iid_field]
    columns = _raw_columns(dataset, fields) or _recbole_columns(dataset, fields)
    texts, empty = [], []
    for item_token in tokens:
        values = [columns[f].get(str(item_token), "") for f in fields]
        text = _compose(values)
        if not text and item_token != "[PAD]":
            empty.append(str(item_token))
            text = f"item {item_token}"
        texts.append(text)
    texts[0] = ""
    if empty:
        getLogger().warning(
            f"{len(empty)} items have an empty {'/'.join(fields)} and are shown as "
            f"'item <id>' in prompts (first ones: {empty[:5]}). Fill the field in the .item "
            "file or choose other item_text_fields to give them a real text."
        )
    return texts


def with_categories(texts, categories, setting):
    """Item texts followed by their category words, e.g. "Scream (1996), Horror, Thriller":
    an item then names what people ask for (the intentions' words)."""
    if categories is None:
        raise ItemTextError(
            f"{setting}=True writes each item's categories after its text, but this dataset "
            "has no category field (class, genre, genres, categories, category). Set "
            "item_category_field to an item field that holds categories, or drop it."
        )
    return [
        ", ".join([text, *words]) if text and words else text
        for text, words in zip(texts, categories)
    ]


def clean_text(value):
    text = html.unescape(str(value))
    return re.sub(r"\s+", " ", text).strip()


def _compose(values):
    title, *qualifiers = [clean_text(v) for v in values]
    qualifiers = [q for q in qualifiers if q]
    if not title:
        return ""
    return f"{title} ({', '.join(qualifiers)})" if qualifiers else title


def _item_fields(dataset):
    if dataset.item_feat is None:
        return []
    return [
        f
        for f in dataset.item_feat.columns
        if f != dataset.iid_field and dataset.field2type.get(f) in TEXT_TYPES
    ]


def _raw_columns(dataset, fields):
    """{field: {item token: raw text}} from the atomic .item file, or None if absent."""
    path = os.path.join(dataset.dataset_path, f"{dataset.dataset_name}.item")
    if not os.path.isfile(path):
        return None
    sep = dataset.config["field_separator"]
    header = pd.read_csv(path, sep=sep, nrows=0, quoting=csv.QUOTE_NONE).columns
    by_field = {column.split(":")[0]: column for column in header}
    if dataset.iid_field not in by_field or any(f not in by_field for f in fields):
        return None
    wanted = [by_field[dataset.iid_field]] + [by_field[f] for f in fields]
    frame = pd.read_csv(
        path,
        sep=sep,
        usecols=wanted,
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        encoding="utf-8",
        encoding_errors="replace",
    )
    ids = frame[by_field[dataset.iid_field]].astype(str)
    return {f: dict(zip(ids, frame[by_field[f]])) for f in fields}


def _recbole_columns(dataset, fields):
    """Fallback: rebuild the text from RecBole's remapped item features (a DataFrame before
    data preparation, an Interaction of tensors after it)."""
    item_feat = dataset.item_feat
    item_tokens = dataset.field2id_token[dataset.iid_field]
    ids = [str(item_tokens[int(i)]) for i in _as_list(item_feat[dataset.iid_field])]
    separator = dataset.config["seq_separator"]
    columns = {}
    for field in fields:
        values = _as_list(item_feat[field])
        ftype = dataset.field2type[field]
        if ftype == FeatureType.TOKEN_SEQ:
            vocab = dataset.field2id_token[field]
            text = [separator.join(vocab[int(t)] for t in row if int(t) != 0) for row in values]
        elif ftype == FeatureType.TOKEN:
            vocab = dataset.field2id_token[field]
            text = ["" if _missing(t) else str(vocab[int(t)]) for t in values]
        else:
            text = ["" if _missing(v) else _format_float(v) for v in values]
        columns[field] = dict(zip(ids, text))
    return columns


def _as_list(values):
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return [v.tolist() if hasattr(v, "tolist") else v for v in values]


def _missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == 0


def _format_float(value):
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
