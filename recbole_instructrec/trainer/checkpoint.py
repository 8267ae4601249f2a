"""Adapter-only checkpoints: safetensors tensors plus JSON metadata, nothing pickled.

One ``.safetensors`` file holds the trainable tensors (LoRA adapters and any other trainable
module), the buffers a module marks as part of what it learned, the optimizer state and the RNG
state, with RecBole's metadata (epoch, best score, config) as a JSON string in the safetensors
header. Loading never unpickles, so a checkpoint cannot execute code. Files are written to a
temporary name and renamed, so a killed run never leaves a truncated file where a good one was.
"""

import json
import os
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "recbole-instructrec/1"
_MODEL = "model/"
_OPTIM = "optimizer/"
_RNG = "rng/"
_BUFFER = "buffer/"


class CheckpointError(ValueError):
    """A checkpoint that does not belong to this model; the message says why."""


def trainable_state(model):
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def kept_buffers(model):
    """Buffers that describe the trained model and so travel with it: those a module names in
    its ``checkpoint_buffers`` (e.g. which items had their own item token in training)."""
    kept = {}
    for prefix, module in model.named_modules():
        for name in getattr(module, "checkpoint_buffers", ()):
            buffer = getattr(module, name, None)
            if buffer is not None:
                kept[f"{prefix}.{name}" if prefix else name] = buffer.detach()
    return kept


def save_checkpoint(path, model, meta, optimizer=None, rng=None):
    tensors = {_MODEL + n: t.contiguous().cpu() for n, t in trainable_state(model).items()}
    tensors.update({_BUFFER + n: t.contiguous().cpu() for n, t in kept_buffers(model).items()})
    optim_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        optim_meta = {"param_groups": state["param_groups"], "scalars": {}}
        for idx, values in state["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{_OPTIM}{idx}/{key}"] = value.contiguous().cpu()
                else:
                    optim_meta["scalars"][f"{idx}/{key}"] = value
    for name, state in (rng or {}).items():
        tensors[_RNG + name] = state.contiguous().cpu()
    _write(path, tensors, {"format": FORMAT, "meta": meta, "optimizer": optim_meta})


def record_meta(path, **values):
    """Add ``values`` to a checkpoint's metadata (e.g. the fusion weight fitted after
    training), keeping every tensor; written like a new checkpoint, so never half-done."""
    header, tensors = read_checkpoint(path)
    header["meta"].update(values)
    _write(path, tensors, header)


def _write(path, tensors, header):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"instructrec": json.dumps(header, default=str)})
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path):
    """(header dict, tensors dict) of a checkpoint, validated as ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint {path!r} does not exist.")
    try:
        with safe_open(path, framework="pt") as f:
            raw = (f.metadata() or {}).get("instructrec")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise CheckpointError(
            f"{path!r} is not an InstructRec checkpoint (not a readable safetensors file: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}). InstructRec "
            "checkpoints are the .safetensors files its trainer writes under checkpoint_dir."
        ) from err
    header = json.loads(raw) if raw else {}
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is a safetensors file but not an InstructRec checkpoint "
            f"(format {header.get('format')!r}, expected {FORMAT!r})."
        )
    return header, tensors


def check_compatible(path, meta, expected):
    """Refuse a checkpoint written for another model, base LLM or item vocabulary."""
    for key, what, fix in (
        ("model", "model", "load it with that model instead"),
        ("llm", "base LLM", "set llm_path to the base model it was trained on"),
        ("n_items", "number of items", "use the dataset and filtering it was trained on"),
        (
            "adapter_shapes",
            "adapter layout",
            "use the lora_* and item-token settings it was trained with",
        ),
    ):
        if key in expected and meta.get(key) != expected[key]:
            theirs, ours = meta.get(key), expected[key]
            if key == "adapter_shapes":
                theirs, ours = _first_difference(theirs or {}, ours)
            raise CheckpointError(
                f"Checkpoint {path!r} was written for {what} {theirs!r}, but this run has "
                f"{ours!r}: {fix}."
            )


def _first_difference(theirs, ours):
    for name in sorted(set(theirs) | set(ours)):
        if theirs.get(name) != ours.get(name):
            return f"{name}: {theirs.get(name)}", f"{name}: {ours.get(name)}"
    return "?", "?"


def load_model_state(model, tensors):
    own = dict(model.named_parameters())
    buffers = kept_buffers(model)
    for key, tensor in tensors.items():
        if key.startswith(_MODEL):
            name = key[len(_MODEL) :]
            with torch.no_grad():
                own[name].copy_(tensor.to(own[name].device, own[name].dtype))
        elif key.startswith(_BUFFER):
            name = key[len(_BUFFER) :]
            if name not in buffers or buffers[name].shape != tensor.shape:
                raise CheckpointError(
                    f"The checkpoint holds {name!r} {tuple(tensor.shape)}, which this model "
                    "does not have in that shape: load it with the item-token settings "
                    "(item_id_tokens, item_token_min_interactions) and dataset it was "
                    "trained with."
                )
            buffers[name].copy_(tensor.to(buffers[name].device, buffers[name].dtype))


def load_optimizer_state(optimizer, header, tensors):
    optim_meta = header.get("optimizer")
    if optim_meta is None:
        return
    state = {}
    for key, tensor in tensors.items():
        if key.startswith(_OPTIM):
            idx, name = key[len(_OPTIM) :].split("/", 1)
            state.setdefault(int(idx), {})[name] = tensor
    for key, value in optim_meta["scalars"].items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optim_meta["param_groups"]})


def rng_states(tensors):
    return {k[len(_RNG) :]: t for k, t in tensors.items() if k.startswith(_RNG)}
