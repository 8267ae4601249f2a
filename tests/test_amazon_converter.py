"""The Amazon 2018 converter writes RecBole atomic files RecBole and InstructRec can read."""

import gzip
import json

from recbole.config import Config
from recbole.data import create_dataset

from recbole_instructrec.data.amazon2018 import convert
from recbole_instructrec.prompts.item_text import item_text_fields, item_texts


def _write(path, records):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def test_convert_then_load(tmp_path):
    meta = [
        {
            "asin": f"B{i}",
            "title": f"Game &amp; Fun {i}",
            "category": ["Video Games", "PC", "Action"],
        }
        for i in range(8)
    ] + [{"asin": "NOTITLE", "title": ""}]
    reviews = [
        {"reviewerID": f"U{u}", "asin": f"B{(u + k) % 8}", "unixReviewTime": 1000 + k}
        for u in range(6)
        for k in range(5)
    ] + [{"reviewerID": "U0", "asin": "NOTITLE", "unixReviewTime": 5}]
    _write(tmp_path / "r.json.gz", reviews)
    _write(tmp_path / "m.json.gz", meta)
    users, items, inters = convert(
        str(tmp_path / "r.json.gz"), str(tmp_path / "m.json.gz"), str(tmp_path), "games", k_core=2
    )
    assert (users, inters) == (6, 30) and items == 8
    config = Config(model="InstructRec", dataset="games", config_dict={"data_path": str(tmp_path)})
    dataset = create_dataset(config)
    texts = item_texts(dataset, item_text_fields(config, dataset))
    assert texts[dataset.field2token_id["item_id"]["B3"]] == "Game & Fun 3"
