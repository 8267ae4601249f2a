"""RecBole's own ``.pth`` checkpoints, read by torch's safe loader (``weights_only=True``).

Besides tensors, RecBole 1.2.1 pickles its ``Config`` and the best validation score (a numpy
float) into every checkpoint. ``torch.load(..., weights_only=True)`` refuses every global it
does not know, so the few a RecBole checkpoint needs are allowed explicitly, through
``torch.serialization.safe_globals``. Measured on a SASRec checkpoint of RecBole 1.2.1:

- ``recbole.config.configurator.Config``, and the enums it holds: ``ModelType``,
  ``InputType``, ``EvaluatorType`` (``recbole.utils.enum_type``);
- ``yaml.loader.FullLoader``: Config keeps the class it parsed YAML with;
- the model's class (Config keeps ``model_class``, e.g. ``...sasrec.SASRec``): allowed when,
  and only when, it is a RecBole model class;
- ``numpy._core.multiarray.scalar``, ``numpy.dtype`` and numpy's dtype classes
  (``numpy.dtypes.Float64DType``): the best validation score.

Any other global (``os.system``, a function, another package's class) stops the load before
anything is unpickled, with its name. A checkpoint that torch's loader cannot parse at all is
refused too: RecBole's trainer saves with ``pickle_protocol=4``, whose opcodes torch's safe
loader does not read, so :mod:`recbole_instructrec.plugin` has RecBole's trainer save with
torch's default protocol (2) instead.
"""

import importlib
import pickle

import numpy as np
import torch
import yaml

_RECBOLE_ENUMS = ("ModelType", "InputType", "EvaluatorType")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint torch's safe loader will not or cannot read; the message says why."""


def base_safe_globals():
    """What every RecBole checkpoint needs allowed, whatever its model (see the module doc)."""
    from recbole.config.configurator import Config
    from recbole.utils import enum_type

    core = getattr(np, "_core", None) or np.core
    dtype_classes = [
        v for v in vars(np.dtypes).values() if isinstance(v, type) and issubclass(v, np.dtype)
    ]
    return [
        Config,
        *(getattr(enum_type, name) for name in _RECBOLE_ENUMS),
        yaml.loader.FullLoader,
        core.multiarray.scalar,
        # Files pickled under numpy 1 name the scalar by numpy 1's module.
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        *dtype_classes,
    ]


def _recbole_model_class(name):
    """The class named ``name`` if it is a RecBole model (what Config keeps as model_class)."""
    module, _, attr = name.rpartition(".")
    if not module.startswith("recbole.model."):
        return None
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    from recbole.model.abstract_recommender import AbstractRecommender

    return found if isinstance(found, type) and issubclass(found, AbstractRecommender) else None


def safe_globals_for(f):
    """The allowlist for checkpoint ``f`` (a path or a seekable file): the base globals plus
    its RecBole model class. Raises :class:`UnsafeCheckpointError` naming any other global."""
    allowed = base_safe_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            unknown = torch.serialization.get_unsafe_globals_in_checkpoint(f)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"torch's safe loader cannot read this checkpoint ({err}). RecBole's own trainer "
            "saves with pickle protocol 4, which it does not parse; checkpoints saved while "
            "recbole_instructrec is imported (its run_recbole, instructrec bench) use protocol 2. "
            "Re-train the model that way, or re-save a checkpoint you wrote yourself once with "
            "torch.save(torch.load(path, weights_only=False), path)."
        ) from err
    finally:
        if hasattr(f, "seek"):
            f.seek(0)
    refused = []
    for name in sorted(unknown):
        model_class = _recbole_model_class(name)
        if model_class is None:
            refused.append(name)
        else:
            allowed.append(model_class)
    if refused:
        raise UnsafeCheckpointError(
            f"The checkpoint asks to load {', '.join(repr(n) for n in refused)}, which is not "
            "allowed in a RecBole checkpoint; refusing to unpickle it. Only load checkpoints "
            "you wrote."
        )
    return allowed


def load_recbole_checkpoint(f, map_location=None):
    """The dict RecBole's trainer saved in ``f`` (config, state_dict, ...), read by
    ``torch.load(weights_only=True)`` with :func:`safe_globals_for`'s allowlist."""
    allowed = safe_globals_for(f)
    with torch.serialization.safe_globals(allowed):
        return torch.load(f, map_location=map_location, weights_only=True)
