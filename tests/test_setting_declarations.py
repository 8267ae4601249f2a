"""Every setting is declared once (recbole_instructrec/model/setting_declarations.py), and
properties/InstructRec.yaml, which RecBole reads, is rendered from the declarations."""

import dataclasses
import os
import re

import pytest
from recbole.config import Config

from conftest import DATASET_DIR
from recbole_instructrec.model import setting_declarations as declared
from recbole_instructrec.plugin import PROPERTIES_DIR

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(declared.__file__)))
# config["name"], and the settings helpers' (config, "name", ...)
READS = re.compile(r'\bconfig\["(\w+)"\]|\(config, "(\w+)"')


def _names_read(text):
    return {a or b for a, b in READS.findall(text)}


def _undeclared(names, recbole_settings):
    return sorted(n for n in names if n not in declared.SETTINGS and n not in recbole_settings)


def test_the_properties_file_is_rendered_from_the_declarations():
    with open(os.path.join(PROPERTIES_DIR, "InstructRec.yaml"), encoding="utf-8") as f:
        written = f.read()
    assert written == declared.render()
    # the check sees a changed default
    changed = [
        dataclasses.replace(d, default="16") if getattr(d, "name", "") == "lora_r" else d
        for d in declared.DECLARATIONS
    ]
    assert written != declared.render(changed)


def test_every_default_is_of_its_declared_type():
    assert [s.type_error() for s in declared.SETTINGS.values() if s.type_error()] == []
    assert declared.Setting("x", "int", "abc", "").type_error() == "x: default 'abc' is not int"
    assert declared.Setting("x", "int", "True", "").type_error() is not None
    assert declared.Setting("x", "float | ~", "~", "").type_error() is None
    assert declared.Setting("x", "number", "1", "").type_error().startswith("x: unknown type")


def test_every_setting_the_code_reads_is_declared_or_recboles():
    config = Config(model="InstructRec", dataset="tiny", config_dict={"data_path": DATASET_DIR})
    recbole_settings = set(config.final_config_dict) - set(declared.SETTINGS)
    # what RecBole's Config adds at run time, and InstructRec's model name
    recbole_settings |= {"device", "local_rank", "single_spec", "model", "dataset"}
    read = set()
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    read |= _names_read(f.read())
    assert "lora_r" in read and "item_head_categories" in read
    assert _undeclared(read, recbole_settings) == []
    # the check catches a setting read and never declared
    assert _undeclared(_names_read('x = config["lora_rank"]'), recbole_settings) == ["lora_rank"]


def test_a_setting_of_the_wrong_type_is_refused_by_name(tmp_path, tiny_llm):
    from recbole.data import create_dataset, data_preparation

    from conftest import tiny_config
    from recbole_instructrec import InstructRec

    def build(**settings):
        config = Config(
            model="InstructRec",
            dataset="tiny",
            config_dict=tiny_config(tmp_path, tiny_llm, **settings),
        )
        train, _, _ = data_preparation(config, create_dataset(config))
        return InstructRec(config, train._dataset)

    with pytest.raises(ValueError, match=r"max_batch_tokens='lots' must be int: packed tokens"):
        build(max_batch_tokens="lots")
    with pytest.raises(ValueError, match=r"eval_progress=1 must be bool"):
        build(eval_progress=1)
    build(max_batch_tokens=2048, train_steps_per_epoch=None)  # the failing counterpart builds
