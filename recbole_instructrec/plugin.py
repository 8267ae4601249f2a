"""Everything that ties recbole-instructrec into RecBole 1.2.1, in one place.

RecBole is never edited. Importing :mod:`recbole_instructrec` calls :func:`install` once, which

1. applies the version shims RecBole 1.2.1 needs on today's stack
   (numpy 2, pandas 3, torch>=2.6 ``torch.load``, and keeping ``ray`` off our run path),
2. registers :class:`~recbole_instructrec.model.InstructRec` with RecBole's own model lookup
   (``recbole.utils.get_model``) and :class:`~recbole_instructrec.trainer.InstructRecTrainer`
   with ``recbole.utils.get_trainer``, so RecBole's own entry points resolve the names, and
3. makes RecBole's ``Config`` load our ``properties/<Model>.yaml`` right after RecBole's internal
   files, so the precedence is: RecBole defaults < our properties < config files < config dict
   < command line.

Each shim checks the condition it repairs, so it is a no-op on a stack that does not need it.
"""

import importlib.machinery
import os
import sys
import types

import numpy as np
import pandas as pd
import torch
import yaml

_HERE = os.path.dirname(os.path.abspath(__file__))
# Installed wheels carry properties/ inside the package (setup.py maps it there); a source
# checkout on PYTHONPATH has it beside the package.
PROPERTIES_DIR = next(
    (
        path
        for path in (os.path.join(_HERE, "properties"), os.path.join(_HERE, "..", "properties"))
        if os.path.isdir(path)
    ),
    os.path.join(_HERE, "properties"),
)
PLUGIN_MODELS = ("InstructRec",)
_MODEL_MODULE = "recbole.model.sequential_recommender.instructrec"
_installed = False


def install():
    """Apply the shims and registrations. Idempotent."""
    global _installed
    if _installed:
        return
    _shim_numpy2()
    _shim_pandas3_token_seq()
    _shim_torch_load()
    _register_model_and_trainer()
    _load_our_properties()
    _installed = True


def _shim_numpy2():
    # RecBole's Config.compatibility_settings aliases np.float = np.float_ etc.; numpy 2 removed
    # the underscored names, so Config() raises AttributeError before it reads any setting.
    for old, new in (
        ("float_", np.float64),
        ("complex_", np.complex128),
        ("unicode_", np.str_),
        ("bool8", np.bool_),
    ):
        if not hasattr(np, old):
            setattr(np, old, new)


def _shim_pandas3_token_seq():
    # Dataset._remap splits the factorized ids of a token_seq field back per row with
    # `Series.agg(len)`; pandas 3 applies `len` to the whole Series there, so every token_seq
    # field (ml-100k's movie_title, class) crashes with "Length of values (1) does not match".
    # Only the per-row lengths differ, so we re-implement _remap with `Series.map(len)`.
    from recbole.data.dataset import dataset as dataset_module
    from recbole.utils import FeatureType

    if int(pd.__version__.split(".")[0]) < 3:
        return

    def _remap(self, remap_list):
        if len(remap_list) == 0:
            return
        tokens, split_point = self._concat_remaped_tokens(remap_list)
        new_ids_list, uniques = pd.factorize(tokens)
        new_ids_list = np.split(new_ids_list + 1, split_point)
        id2token = np.array(["[PAD]"] + list(uniques))
        token2id = {token: i for i, token in enumerate(id2token)}
        for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
            if field not in self.field2id_token:
                self.field2id_token[field] = id2token
                self.field2token_id[field] = token2id
            if ftype == FeatureType.TOKEN:
                feat[field] = new_ids
            elif ftype == FeatureType.TOKEN_SEQ:
                row_ends = np.cumsum(feat[field].map(len).to_numpy())[:-1]
                feat[field] = pd.Series(
                    np.split(new_ids, row_ends), index=feat.index, dtype=object
                )

    dataset_module.Dataset._remap = _remap


class _TorchWithRecBoleLoad(types.ModuleType):
    """`torch`, except that `load` keeps RecBole 1.2.1's pre-2.6 semantics.

    RecBole's own checkpoints pickle its Config, which torch>=2.6's `weights_only=True` default
    refuses. We give RecBole's trainer (and only it) a `torch` whose `load` defaults to
    `weights_only=False`; these are files RecBole itself wrote. InstructRec checkpoints do not
    take this path: they are safetensors plus JSON (see trainer.checkpoint).
    """

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)


def _shim_torch_load():
    from recbole.trainer import trainer as trainer_module

    if isinstance(trainer_module.torch, _TorchWithRecBoleLoad):
        return
    trainer_module.torch = _TorchWithRecBoleLoad("torch")


def _register_model_and_trainer():
    # get_model() looks for `recbole.model.<folder>.<name.lower()>` with importlib.util.find_spec,
    # which consults sys.modules first (a module there needs a __spec__), then getattr's the class.
    import recbole.trainer
    from recbole.model import sequential_recommender

    from recbole_instructrec.model import InstructRec
    from recbole_instructrec.trainer import InstructRecTrainer

    module = types.ModuleType(_MODEL_MODULE)
    module.__spec__ = importlib.machinery.ModuleSpec(_MODEL_MODULE, loader=None)
    module.InstructRec = InstructRec
    sys.modules[_MODEL_MODULE] = module
    sequential_recommender.instructrec = module
    sequential_recommender.InstructRec = InstructRec
    recbole.trainer.InstructRecTrainer = InstructRecTrainer


def _load_our_properties():
    # RecBole only reads its own properties/ folder, and its quick-start sequential.yaml (full
    # ranking) would override a model yaml's eval_args. Loading ours after all internal files
    # and before the external ones gives: RecBole < ours < files < dict < command line.
    from recbole.config import Config

    original = Config._load_internal_config_dict
    if getattr(original, "_instructrec_wrapped", False):
        return

    def _load_internal_config_dict(self, model, model_class, dataset):
        original(self, model, model_class, dataset)
        path = os.path.join(PROPERTIES_DIR, f"{model}.yaml")
        if model in PLUGIN_MODELS and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                ours = yaml.load(f.read(), Loader=self.yaml_loader) or {}
            self.internal_config_dict.update(ours)

    _load_internal_config_dict._instructrec_wrapped = True
    Config._load_internal_config_dict = _load_internal_config_dict
