"""LoRA adapters on the backbone (peft); the base weights are frozen."""

import re
import warnings


def prepare_for_training(llm, gradient_checkpointing, load_in_bits):
    """Activation checkpointing (non-reentrant) if asked, and peft's preparation of a 4/8-bit
    model; before :func:`attach_lora`."""
    if load_in_bits:
        from peft import prepare_model_for_kbit_training

        # Checkpointing is switched on below, by transformers' current name for it.
        prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
    if gradient_checkpointing:
        # non-reentrant checkpointing needs no input gradients, so a frozen embedding is fine
        llm.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )


class LoraSettingError(ValueError):
    """A LoRA setting that does not fit the model; the message says which and how to fix it."""


def attach_lora(model, r=8, alpha=16, dropout=0.05, target_modules="all-linear"):
    """Wrap ``model`` with LoRA adapters; ``r=0`` freezes everything (zero-shot only)."""
    from peft import LoraConfig, get_peft_model

    if not r:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return model
    if isinstance(target_modules, str) and target_modules != "all-linear":
        target_modules = [m.strip() for m in target_modules.split(",") if m.strip()]
    if not isinstance(target_modules, str):
        _check_targets(model, list(target_modules))
    lora_config = LoraConfig(
        r=int(r),
        lora_alpha=int(alpha),
        lora_dropout=float(dropout),
        target_modules=target_modules,
        bias="none",
        task_type="SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` while it wraps
        # the model (to decide whether inputs need gradients); that deprecated call is peft's.
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        return get_peft_model(model, lora_config)


def _check_targets(model, targets):
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = [t for t in targets if t not in leaf_names and not _matches_any(t, model)]
    if unknown:
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if type(module).__name__ in ("Linear", "Conv1D")
            }
        )
        raise LoraSettingError(
            f"lora_target_modules={targets} names {unknown}, which match no module of the model. "
            f"Its linear layers are named {linear}; use some of them, or 'all-linear'."
        )


def _matches_any(pattern, model):
    try:
        compiled = re.compile(pattern)
    except re.error:
        return False
    return any(compiled.fullmatch(name) for name, _ in model.named_modules())
