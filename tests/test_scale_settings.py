"""GPU-oriented settings, checked on CPU: gradient checkpointing, autocast, QLoRA refusal."""

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, init_seed

import recbole_instructrec
from conftest import tiny_config
from recbole_instructrec.scoring.backbone import BackboneError


def _model_and_batch(tmp_path, llm_path, **overrides):
    config = Config(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, llm_path, lora_dropout=0.0, **overrides),
    )
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("InstructRec")(config, train._dataset)
    return model, next(iter(train))


def _loss_and_grads(model, batch):
    model.train()
    model.negative_generator.manual_seed(0)
    model.template_generator.manual_seed(0)
    loss = model.calculate_loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tmp_path, tiny_llm):
    plain = _loss_and_grads(*_model_and_batch(tmp_path / "a", tiny_llm))
    checkpointed_model, batch = _model_and_batch(
        tmp_path / "b", tiny_llm, gradient_checkpointing=True
    )
    assert checkpointed_model.llm.base_model.model.is_activation_checkpointing
    checkpointed = _loss_and_grads(checkpointed_model, batch)
    assert checkpointed[0] == pytest.approx(plain[0].item(), abs=1e-5)
    assert plain[1].keys() == checkpointed[1].keys()
    for name, grad in plain[1].items():
        assert torch.allclose(grad, checkpointed[1][name], atol=1e-5), name


def test_autocast_training_and_evaluation_run(tmp_path, tiny_llm):
    result = recbole_instructrec.run_recbole(
        model="InstructRec",
        dataset="tiny",
        config_dict=tiny_config(tmp_path, tiny_llm, enable_amp=True, amp_dtype="bfloat16"),
    )
    assert 0.0 <= result["test_result"]["ndcg@5"] <= 1.0
    assert result["best_valid_score"] == result["best_valid_score"]  # not NaN


def test_unknown_amp_dtype_names_the_setting(tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="amp_dtype='float8'"):
        recbole_instructrec.run_recbole(
            model="InstructRec",
            dataset="tiny",
            config_dict=tiny_config(tmp_path, tiny_llm, amp_dtype="float8"),
        )


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_loading_without_bitsandbytes_or_gpu_is_a_clear_error(tmp_path, tiny_llm, bits):
    with pytest.raises(BackboneError, match=f"load_in_bits={bits}") as err:
        _model_and_batch(tmp_path, tiny_llm, load_in_bits=bits)
    assert "bitsandbytes" in str(err.value)
    assert "unset load_in_bits" in str(err.value).lower()


def test_load_in_bits_other_values_are_refused(tmp_path, tiny_llm):
    with pytest.raises(BackboneError, match="load_in_bits=3"):
        _model_and_batch(tmp_path, tiny_llm, load_in_bits=3)


def test_enable_amp_unset_autocasts_only_where_bf16_is_native(tmp_path):
    """``enable_amp: ~`` turns bf16 autocast on for a CPU that has AVX512-BF16 or AMX, and off
    for one without, where bf16 is emulated and slower than float32."""
    from recbole_instructrec.trainer.trainer import bf16_is_native

    cpu = torch.device("cpu")
    flags = "fpu sse2 avx2 avx512f avx512bw"
    without = tmp_path / "old-cpu"
    without.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert not bf16_is_native(cpu, str(without))
    for native in ("avx512_bf16", "amx_bf16"):
        with_it = tmp_path / native
        with_it.write_text(f"processor\t: 0\nflags\t\t: {flags} {native}\n")
        assert bf16_is_native(cpu, str(with_it))
    assert not bf16_is_native(cpu, str(tmp_path / "no-such-file"))
