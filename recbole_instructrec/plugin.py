"""Everything that ties recbole-instructrec into RecBole 1.2.1, in one place.

RecBole is never edited. Importing :mod:`recbole_instructrec` calls :func:`install` once, which

1. applies the version shims RecBole 1.2.1 needs on today's stack
   (numpy 2, pandas 3, torch>=2.6 ``torch.load`` of RecBole's checkpoints, read by torch's safe
   loader, and keeping ``ray`` off our run path),
2. registers :class:`~recbole_instructrec.model.InstructRec` with RecBole's own model lookup
   (``recbole.utils.get_model``) and :class:`~recbole_instructrec.trainer.InstructRecTrainer`
   with ``recbole.utils.get_trainer``, so RecBole's own entry points resolve the names, and
3. makes RecBole's ``Config`` load our ``properties/<Model>.yaml`` right after RecBole's internal
   files, so the precedence is: RecBole defaults < our properties < config files < config dict
   < command line; and lets CE-loss models (SASRec, BERT4Rec) run without the
   ``train_neg_sample_args=None`` that RecBole 1.2.1 otherwise demands of them, and
4. lets RecBole's distributed launcher (``--nproc``, ``--world_size``) run on machines without a
   GPU: RecBole always joins an NCCL group on ``cuda:<rank>``; without CUDA we join a gloo group
   on the CPU instead (any RecBole model benefits, not only ours); and lets ``torchrun`` start
   the processes (the group is then joined through torchrun's environment), and
5. makes RecBole's ``ensure_dir`` safe when several ranks start together: it checks
   ``os.path.exists`` and then calls ``os.makedirs`` without ``exist_ok``, so two ranks starting
   in a folder without ``log/`` or ``saved/`` could crash the slower one with FileExistsError.

Each shim checks the condition it repairs, so it is a no-op on a stack that does not need it.

Two fixes cannot live here, because they must hold before this package is imported: a script
(or RecBole's own model tests) may import ``recbole.quick_start`` first, which loads ray 2.6.3
(the newest RecBole 1.2.1 allows). That ray imports ``pkg_resources``, so setup.py keeps
setuptools below 82, the release that removed it; and it names numpy 1's ``np.bool8``, which the
``recbole_instructrec.pth`` start-up hook (``_recbole_instructrec_startup``) aliases just before
ray loads. Our own ``run``/``run_recbole`` do not import ray at all.
"""

import importlib
import importlib.machinery
import os
import sys
import types
import warnings

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
    _autograd_anomaly_off()
    _load_our_properties()
    _distributed_without_gpu()
    _concurrent_safe_dirs()
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
    # pandas 3 (copy-on-write) breaks three things in recbole.data.dataset.Dataset:
    # * _remap splits the factorized ids of a token_seq field back per row with
    #   `Series.agg(len)`, which pandas 3 applies to the whole Series: every token_seq field
    #   (ml-100k's movie_title) crashes with "Length of values (1) does not match".
    # * `df[field].fillna(..., inplace=True)` is a silent no-op, so an empty token_seq cell stays
    #   NaN (and `.split` crashes on it) and _fill_nan leaves NaN tokens and floats behind.
    if int(pd.__version__.split(".")[0]) < 3:
        return
    from recbole.data.dataset import dataset as dataset_module
    from recbole.utils import FeatureType

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
                feat[field] = pd.Series(np.split(new_ids, row_ends), index=feat.index, dtype=object)

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    empty = np.array(
                        [], dtype=np.int64 if ftype == FeatureType.TOKEN_SEQ else float
                    )
                    feat[field] = feat[field].apply(
                        lambda x, empty=empty: empty.copy() if isinstance(x, float) else x
                    )

    class _PandasReadingEmptySeqCells(types.ModuleType):
        """`pandas` for dataset.py, except that read_csv gives empty seq cells as ''."""

        def __getattr__(self, name):
            return getattr(pd, name)

        @staticmethod
        def read_csv(*args, **kwargs):
            frame = pd.read_csv(*args, **kwargs)
            seq_columns = [c for c in frame.columns if str(c).endswith("_seq")]
            if seq_columns:
                frame[seq_columns] = frame[seq_columns].fillna("")
            return frame

    # The no-op inplace calls are repaired above; their ChainedAssignmentError is noise now.
    warnings.filterwarnings("ignore", message="A value is being set on a copy", module="recbole")
    dataset_module.Dataset._remap = _remap
    dataset_module.Dataset._fill_nan = _fill_nan
    dataset_module.pd = _PandasReadingEmptySeqCells("pandas")


class _TorchWithSafeRecBoleCheckpoints(types.ModuleType):
    """`torch`, except that RecBole's trainer saves and loads its checkpoints safely.

    RecBole's own checkpoints pickle its Config, which torch>=2.6's `weights_only=True` default
    refuses. `load` reads them with torch's safe loader and the allowlist of
    :mod:`.scoring.recbole_checkpoint` (never `weights_only=False`), and `save` writes them with
    torch's default pickle protocol (2) instead of RecBole's 4, which torch's safe loader cannot
    parse. Only RecBole's trainer module sees this `torch`. InstructRec checkpoints do not take
    this path: they are safetensors plus JSON (see trainer.checkpoint).
    """

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        from recbole_instructrec.scoring.recbole_checkpoint import load_recbole_checkpoint

        if kwargs.get("weights_only") is False:
            raise ValueError("RecBole checkpoints are loaded with torch's safe loader only.")
        return load_recbole_checkpoint(f, map_location=map_location)

    @staticmethod
    def save(obj, f, *args, **kwargs):
        kwargs.pop("pickle_protocol", None)
        return torch.save(obj, f, *args, **kwargs)


def _shim_torch_load():
    from recbole.trainer import trainer as trainer_module

    if isinstance(trainer_module.torch, _TorchWithSafeRecBoleCheckpoints):
        return
    trainer_module.torch = _TorchWithSafeRecBoleCheckpoints("torch")


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


def _autograd_anomaly_off():
    # recbole/model/sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True)
    # at import, and importing any RecBole sequential model imports it. Anomaly mode checks
    # every backward result for NaN and keeps a stack trace of every forward op: its NaN checks
    # (aten::ne, aten::any) take 16 % of a profiled SASRec batch on CPU
    # (benchmarks/experiments/baselines/results/baseline_epoch_cost.md), and it slows every
    # model, ours included. It is a debugging aid, so it is switched back off once RecBole is
    # loaded; torch.autograd.set_detect_anomaly(True) after import still turns it on.
    from recbole.model import sequential_recommender  # noqa: F401  (runs sine.py's import)

    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)


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
        # RecBole 1.2.1's overall.yaml samples one training negative, yet its own Config then
        # rejects every CE-loss model (SASRec, BERT4Rec, ...) unless the user clears it. Clear
        # it for them, unless they set train_neg_sample_args themselves.
        loss_type = self.external_config_dict.get(
            "loss_type", self.internal_config_dict.get("loss_type")
        )
        if loss_type == "CE" and "train_neg_sample_args" not in self.external_config_dict:
            self.internal_config_dict["train_neg_sample_args"] = None

    _load_internal_config_dict._instructrec_wrapped = True
    Config._load_internal_config_dict = _load_internal_config_dict


def launched_by_torchrun():
    """True in a process started by ``torchrun`` (it sets these for every worker)."""
    return all(k in os.environ for k in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "WORLD_SIZE"))


def _distributed_without_gpu():
    from recbole.config import Config
    from recbole.trainer import trainer as trainer_module

    original = Config._init_device
    if getattr(original, "_instructrec_wrapped", False):
        return

    def _init_device(self):
        cfg = self.final_config_dict
        gpu_id = cfg["gpu_id"]
        gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
        use_cuda = torch.cuda.is_available() and bool(gpu_id)
        torchrun = launched_by_torchrun()
        if "local_rank" not in cfg or (use_cuda and not torchrun):
            return original(self)  # one process, or RecBole's own NCCL launcher
        import torch.distributed as dist

        cfg["gpu_id"] = gpu_id
        if not dist.is_initialized():
            if torchrun:  # torchrun's agent already hosts the rendezvous store
                dist.init_process_group(
                    backend="nccl" if use_cuda else "gloo", init_method="env://"
                )
            else:
                dist.init_process_group(
                    backend="gloo",
                    rank=cfg["local_rank"] + cfg["offset"],
                    world_size=cfg["world_size"],
                    init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
                )
        if use_cuda:
            cfg["device"] = torch.device("cuda", cfg["local_rank"])
            torch.cuda.set_device(cfg["local_rank"])
        else:
            cfg["device"] = torch.device("cpu")
            # nproc processes share this machine's cores; without this each would start one
            # thread per core and they would fight over them.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, int(cfg["nproc"]))))
        cfg["single_spec"] = False
        if cfg["local_rank"] != 0:
            cfg["state"] = "error"
            cfg["show_progress"] = False
            cfg["verbose"] = False

    _init_device._instructrec_wrapped = True
    Config._init_device = _init_device
    # RecBole wraps models as DistributedDataParallel(model, device_ids=[local_rank]); torch
    # only accepts device_ids for CUDA modules.
    trainer_module.DistributedDataParallel = _DistributedDataParallelOnAnyDevice
    _share_best_checkpoint(trainer_module.Trainer)


def _share_best_checkpoint(trainer_class):
    from recbole_instructrec.trainer.rank0 import rank0_value, wait_for_rank0

    # Under DDP only rank 0 saves, yet every rank loads "its" best file for the test: file names
    # carry the second each process made them, and nothing waits for rank 0 to finish writing.
    original_init, original_evaluate = trainer_class.__init__, trainer_class.evaluate

    def __init__(self, config, model):
        original_init(self, config, model)
        self.saved_model_file = rank0_value(config, self.saved_model_file)

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            wait_for_rank0(self.config)
        return original_evaluate(self, eval_data, load_best_model, model_file, show_progress)

    trainer_class.__init__, trainer_class.evaluate = __init__, evaluate


# Every module of RecBole 1.2.1 that binds ensure_dir by name: the logger (log/), the trainer
# (checkpoint_dir), data preparation (checkpoint_dir) and the dataset's save().
_MODULES_WITH_ENSURE_DIR = (
    "recbole.utils.utils",
    "recbole.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
)


def make_dirs(path):
    """RecBole's ``ensure_dir``, safe against another process creating ``path`` meanwhile."""
    os.makedirs(path, exist_ok=True)


def _concurrent_safe_dirs():
    # Every rank of a --nproc run leaves Config() together (it waits for the process group)
    # and calls init_logger at once: exists('./log/') is False for both, and the slower
    # makedirs raised FileExistsError. Each module holds its own reference to ensure_dir, so
    # each is rebound.
    for name in _MODULES_WITH_ENSURE_DIR:
        module = importlib.import_module(name)
        if getattr(module, "ensure_dir", make_dirs) is not make_dirs:
            module.ensure_dir = make_dirs


def _DistributedDataParallelOnAnyDevice(module, device_ids=None, **kwargs):
    from torch.nn.parallel import DistributedDataParallel

    if not any(p.requires_grad for p in module.parameters()):
        return module  # zero-shot (lora_r=0): nothing to synchronise, and DDP refuses it
    on_cpu = all(p.device.type == "cpu" for p in module.parameters())
    return DistributedDataParallel(module, device_ids=None if on_cpu else device_ids, **kwargs)
