"""RecBole's .pth checkpoints are read by torch's safe loader with an explicit allowlist."""

import fractions
import zipfile

import pytest
import torch

from recbole_instructrec.scoring.recbole_checkpoint import (
    UnsafeCheckpointError,
    base_safe_globals,
    load_recbole_checkpoint,
)


def _pickle_protocol(path):
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        head = archive.open(name).read(2)
    assert head[:1] == b"\x80"
    return head[1]


def _name(entry):
    obj, name = entry if isinstance(entry, tuple) else (entry, None)
    return name or f"{obj.__module__}.{obj.__name__}"


def test_a_sasrec_checkpoint_needs_only_the_allowlist_and_its_model_class(sasrec_checkpoint):
    # RecBole's trainer saved it through the plugin's shim: torch's default protocol.
    assert _pickle_protocol(sasrec_checkpoint) == 2
    unknown = set(torch.serialization.get_unsafe_globals_in_checkpoint(sasrec_checkpoint))
    allowed = {_name(entry) for entry in base_safe_globals()}
    assert unknown - allowed == {"recbole.model.sequential_recommender.sasrec.SASRec"}
    assert {"recbole.config.configurator.Config", "yaml.loader.FullLoader"} <= unknown
    checkpoint = load_recbole_checkpoint(sasrec_checkpoint)
    assert checkpoint["config"]["model"] == "SASRec"
    assert "item_embedding.weight" in checkpoint["state_dict"]


def test_recboles_trainer_loads_its_checkpoints_only_safely(sasrec_checkpoint):
    from recbole.trainer import trainer as trainer_module

    loaded = trainer_module.torch.load(sasrec_checkpoint, map_location="cpu")
    assert loaded["config"]["model"] == "SASRec"
    with pytest.raises(ValueError, match="safe loader"):
        trainer_module.torch.load(sasrec_checkpoint, weights_only=False)


def test_a_protocol_4_checkpoint_is_refused_with_how_to_resave_it(tmp_path, sasrec_checkpoint):
    state = load_recbole_checkpoint(sasrec_checkpoint)
    torch.save(state, tmp_path / "p4.pth", pickle_protocol=4)
    with pytest.raises(UnsafeCheckpointError, match="protocol 4"):
        load_recbole_checkpoint(str(tmp_path / "p4.pth"))


def test_a_global_outside_the_allowlist_is_named_and_refused(tmp_path):
    torch.save({"config": fractions.Fraction(1, 3), "state_dict": {}}, tmp_path / "odd.pth")
    with pytest.raises(UnsafeCheckpointError, match="'fractions.Fraction'.*not allowed"):
        load_recbole_checkpoint(str(tmp_path / "odd.pth"))
