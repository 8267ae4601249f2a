"""Shared fixtures: the shipped tiny dataset and tiny randomly initialised LMs built here."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DATASET_DIR = os.path.join(ROOT, "dataset")

import recbole_instructrec  # noqa: E402,F401  (registers the plugin)


def benchmark_script(name):
    """The module of ``benchmarks/<name>.py`` (scripts, not a package), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "benchmarks", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tokenizer(directory):
    """A word-level tokenizer over the tiny dataset's words and our template words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = []
    for name in ("tiny.item",):
        with open(os.path.join(DATASET_DIR, "tiny", name), encoding="utf-8") as f:
            corpus += f.read().split("\n")
    from recbole_instructrec.prompts.templates import load_templates

    corpus += [t.instruction for t in load_templates().values()]
    corpus += ["Answer : Yes No A B C D E F G H I J 0 1 2 3 4 5 6 7 8 9 ( ) , . - …"]
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>"])
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    fast.save_pretrained(directory)
    return fast


def build_tiny_causal_lm(directory, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def build_tiny_t5(directory, seed=0):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory):
    return build_tiny_t5(str(tmp_path_factory.mktemp("tiny-t5")))


def tiny_config(tmp_path, llm_path, **overrides):
    """Settings for a fast InstructRec run on dataset/tiny."""
    config = {
        "data_path": DATASET_DIR,
        "llm_path": llm_path,
        "checkpoint_dir": str(tmp_path / "saved"),
        "log_wandb": False,
        "show_progress": False,
        "eval_progress": False,
        "state": "WARNING",
        "train_steps_per_epoch": 3,
        "train_batch_size": 4,
        "eval_batch_size": 50,
        "valid_max_users": None,
        "epochs": 1,
        "seed": 2020,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def sasrec_checkpoint(tmp_path_factory):
    """A RecBole SASRec trained on dataset/tiny by run_recbole: a retriever, fusion model or
    source of collaborative item embeddings for InstructRec on the same data."""
    folder = tmp_path_factory.mktemp("sasrec")
    settings = tiny_config(folder, None, epochs=1, load_col=None)
    recbole_instructrec.run_recbole(model="SASRec", dataset="tiny", config_dict=settings)
    (name,) = os.listdir(folder / "saved")
    return str(folder / "saved" / name)
