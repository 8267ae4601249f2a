"""InstructRecTrainer: RecBole's Trainer with adapter-only checkpoints and bounded epochs.

Differences from ``recbole.trainer.Trainer``:

* Only trainable tensors (the LoRA adapters) are optimized and checkpointed, as safetensors
  plus JSON (see :mod:`.checkpoint`): a few MB instead of the whole LLM, and no pickle.
* ``train_steps_per_epoch`` bounds an epoch: RecBole turns every prefix of every sequence into
  a training sample (~99k on ml-100k), far more than an LLM sees on a CPU in minutes.
* ``valid_max_users`` validates on a fixed, seeded sample of users: validation only picks the
  checkpoint, and scoring every user twice (valid and test) would double the evaluation cost.
  The test set is always evaluated on every user.
* Score fusion (``fusion_model`` without ``fusion_weight``): after training, the weight is
  fitted on the validation users, for the best epoch's adapters, and recorded in that epoch's
  checkpoint.
* ``valid_templates`` validates each listed task and averages ``valid_metric`` over them, so
  the epoch (and a bench row's validation-grid point) is chosen for every task at once.
* ``gradient_accumulation_steps`` and ``eval_progress`` (a tqdm bar during evaluation).
* Under RecBole's distributed launcher (``--nproc``) every rank uses rank 0's checkpoint name
  (names carry the second they were made, which can differ between processes), only rank 0
  writes, and the others wait for the file before loading it.
"""

import itertools
import os

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from recbole_instructrec.jsonable import jsonable
from recbole_instructrec.scoring import fusion
from recbole_instructrec.trainer import checkpoint as ckpt
from recbole_instructrec.trainer.rank0 import rank0_value, wait_for_rank0


class InstructRecTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.steps_per_epoch = config["train_steps_per_epoch"]
        self.accumulation = max(int(config["gradient_accumulation_steps"] or 1), 1)
        self.eval_progress = bool(config["eval_progress"])
        self.valid_max_users = config["valid_max_users"]
        self._valid_subsets = {}
        self._list_rows = {}
        self._pending_loader_state = None
        self.amp_dtype = _AMP_DTYPES.get(str(config["amp_dtype"] or "bfloat16"))
        if self.amp_dtype is None:
            raise ValueError(
                f"amp_dtype={config['amp_dtype']!r} is not supported; use bfloat16 or float16."
            )
        if config["enable_amp"] is None:  # ~: autocast where the hardware computes in bf16
            self.enable_amp = self.amp_dtype == torch.bfloat16 and bf16_is_native(self.device)
            self.logger.info(
                f"enable_amp=~: autocast in bfloat16 {'on' if self.enable_amp else 'off'}"
            )
        self.saved_model_file = rank0_value(
            config, _unused_path(os.path.splitext(self.saved_model_file)[0] + ".safetensors")
        )

    @property
    def distributed(self):
        return not self.config["single_spec"]

    def _build_optimizer(self, **kwargs):
        kwargs.setdefault("params", self.model.parameter_groups())
        if not kwargs["params"]:
            # lora_r=0: nothing to train, but RecBole still wants an optimizer object.
            kwargs["params"] = [torch.nn.Parameter(torch.zeros(1))]
        return super()._build_optimizer(**kwargs)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        train_data = self._running_list_rows(train_data)
        if self.distributed and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)
        steps = len(train_data)
        if self.steps_per_epoch:
            steps = min(steps, int(self.steps_per_epoch))
        batches = itertools.islice(train_data, steps)
        if show_progress:
            batches = tqdm(
                batches, total=steps, ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink")
            )
        signals_before = self._model.training_signals
        total_loss = 0.0
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.enable_scaler)
        self.optimizer.zero_grad()
        for step, interaction in enumerate(batches, 1):
            interaction = interaction.to(self.device)
            sync_loss = 0
            if self.distributed:
                self.set_reduce_hook()
                sync_loss = self.sync_grad_loss()
            with self._autocast():
                loss = loss_func(interaction)
            self._check_nan(loss)
            total_loss += loss.item()
            scaler.scale((loss + sync_loss) / self.accumulation).backward()
            if step % self.accumulation == 0 or step == steps:
                if self.clip_grad_norm:
                    scaler.unscale_(self.optimizer)
                    clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
                scaler.step(self.optimizer)
                scaler.update()
                self.optimizer.zero_grad()
            if show_progress:
                batches.set_postfix_str(f"loss {total_loss / step:.4f}")
        signals = self._model.training_signals
        self.logger.info(
            f"epoch {epoch_idx}: {signals - signals_before} training signals ({signals} in all"
            + (", this process" if self.distributed else "")
            + ")"
        )
        return total_loss

    @property
    def _model(self):
        """The InstructRec model, unwrapped from DistributedDataParallel."""
        return getattr(self.model, "module", self.model)

    def _running_list_rows(self, train_data):
        """In the running-list layout a row trains every position of its window of
        ``max_history_items`` + 1 items, so only every ``max_history_items``-th row of a user,
        counted from its last, is kept: each training interaction is then the positive of
        exactly one signal per epoch."""
        model = self._model
        if not getattr(model, "running_list", False):
            return train_data
        key = id(train_data)
        if key not in self._list_rows:
            self._list_rows[key] = running_list_loader(self.config, train_data, model)
        return self._list_rows[key]

    def _autocast(self):
        """RecBole's ``enable_amp``, in ``amp_dtype`` (bfloat16 by default: it needs no loss
        scaling; float16 goes with ``enable_scaler``)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.enable_amp)

    def _valid_epoch(self, valid_data, show_progress=False):
        # Before fusion_weight is fitted (after training), epochs are picked by the LLM alone.
        data = self._validation_sample(valid_data)
        with self.model.provisional_fusion_weight(0.0):
            if not self._model.valid_templates:
                return super()._valid_epoch(data, show_progress)
            return self._valid_over_templates(data, show_progress)

    def _valid_over_templates(self, data, show_progress):
        """``valid_templates``: the mean of ``valid_metric`` over the templates, each task
        weighed alike, with every template's own metrics beside it. RecBole draws the
        validation negatives anew at each evaluation; every template here sees the same draw."""
        model = self._model
        kept = model.prompts
        draw = (np.random.get_state(), torch.get_rng_state())
        scores, results = [], {}
        try:
            for template in model.valid_templates:
                np.random.set_state(draw[0])
                torch.set_rng_state(draw[1])
                model.use_eval_template(template.id)
                score, result = super()._valid_epoch(data, show_progress)
                scores.append(float(score))
                results.update({f"{template.id} {k}": v for k, v in result.items()})
        finally:
            model.prompts = kept
        mean = float(np.mean(scores))
        return mean, {f"mean {self.valid_metric}": round(mean, 4), **results}

    def _validation_sample(self, valid_data):
        """The same seeded sample of ``valid_max_users`` users at every validation."""
        if not self.valid_max_users or valid_data is None:
            return valid_data
        key = id(valid_data)
        if key not in self._valid_subsets:
            dataset = valid_data._dataset
            users = np.unique(dataset.inter_feat[dataset.uid_field].numpy())
            if len(users) <= int(self.valid_max_users):
                self._valid_subsets[key] = valid_data
            else:
                rng = np.random.RandomState(int(self.config["seed"] or 0))
                keep = rng.choice(users, int(self.valid_max_users), replace=False)
                mask = np.isin(dataset.inter_feat[dataset.uid_field].numpy(), keep)
                subset = dataset.copy(dataset.inter_feat[torch.from_numpy(mask)])
                self._valid_subsets[key] = type(valid_data)(
                    self.config, subset, valid_data._sampler, shuffle=False
                )
        return self._valid_subsets[key]

    # ------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if self.distributed and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        meta = dict(
            self.model.checkpoint_identity(),
            epoch=epoch,
            cur_step=self.cur_step,
            training_signals=self._model.training_signals,
            best_valid_score=float(self.best_valid_score),
            best_file=os.path.abspath(self.saved_model_file),
            config={k: jsonable(v) for k, v in self.config.final_config_dict.items()},
            resolved_settings=self._model.resolved_settings(),
        )
        ckpt.save_checkpoint(path, self.model, meta, self.optimizer, self._rng_states())
        if verbose:
            size = os.path.getsize(path) / 2**20
            self.logger.info(set_color("Saving current", "blue") + f": {path} ({size:.1f} MB)")

    @property
    def resume_file(self):
        """Written after every validated epoch: the latest state, for resuming after a kill
        (``saved_model_file`` keeps RecBole's meaning: the best epoch)."""
        return os.path.splitext(self.saved_model_file)[0] + ".resume.safetensors"

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        # the loader the epochs draw from (the running list's own, in that layout): its
        # shuffling state is what a resumed run must continue
        self._train_data = self._running_list_rows(train_data)
        if self._pending_loader_state is not None:
            self._train_data.generator.set_state(self._pending_loader_state)
            self._pending_loader_state = None

        def after_validation(epoch_idx, valid_score):
            if saved:
                self._save_checkpoint(epoch_idx, verbose=False, saved_model_file=self.resume_file)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        result = super().fit(
            train_data, valid_data, verbose, saved, show_progress, callback_fn=after_validation
        )
        if self.model.fusion_weight_unfitted():
            best = saved and os.path.isfile(self.saved_model_file)
            if best:
                self.load_adapter(self.saved_model_file)  # fit the weight to the tested epoch
            weight = self.fit_fusion_weight(valid_data)
            if best and not (self.distributed and self.config["local_rank"] != 0):
                # the checkpoint this run wrote is served (instructrec recommend) as it was tested
                ckpt.record_meta(self.saved_model_file, fusion_weight=weight)
        return result

    @torch.no_grad()
    def fit_fusion_weight(self, valid_data):
        """Score fusion (``fusion_model``): choose ``fusion_weight`` on the validation users
        (the ``valid_max_users`` sample) by ``valid_metric``; returns it."""
        groups = []
        self.model.eval()
        data = self._validation_sample(valid_data)
        for batch in data or []:
            interaction = batch[0] if isinstance(batch, tuple) else batch
            with self._autocast():
                groups += self.model.fusion_groups(interaction.to(self.device))
        weight, table = fusion.fit_weight(groups, self.config["valid_metric"])
        self.model.fusion_weight = weight
        values = ", ".join(f"{w:g}: {v:.4f}" for w, v in table.items())
        self.logger.info(
            set_color("fusion_weight", "blue")
            + f" = {weight:g}, fitted on {len(groups)} validation users by "
            f"{self.config['valid_metric']} ({values}); set fusion_weight={weight:g} to reuse it"
        )
        return weight

    def _rng_states(self):
        states = {"torch": torch.get_rng_state(), **self.model.rng_state()}
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        states["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        states["numpy_extra"] = torch.tensor([pos, has_gauss, gauss], dtype=torch.float64)
        loader = getattr(self, "_train_data", None)
        if loader is not None:
            states["dataloader"] = loader.generator.get_state()
        return states

    def _restore_rng_states(self, rng):
        if "torch" in rng:
            torch.set_rng_state(rng.pop("torch"))
        if "numpy" in rng:
            pos, has_gauss, gauss = rng.pop("numpy_extra").tolist()
            keys = rng.pop("numpy").numpy().astype(np.uint32)
            np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), gauss))
        self._pending_loader_state = rng.pop("dataloader", None)
        self.model.load_rng_state(rng)

    def load_adapter(self, path):
        """Load a checkpoint's trainable tensors into the model; returns its header."""
        header, tensors = ckpt.read_checkpoint(path)
        ckpt.check_compatible(path, header["meta"], self.model.checkpoint_identity())
        ckpt.load_model_state(self.model, tensors)
        return header, tensors

    def resume_checkpoint(self, resume_file):
        """Continue from a checkpoint: a ``*.resume.safetensors`` file restores the exact state
        after its epoch (adapters, optimizer, every RNG, data order); a best-epoch file
        restores that epoch."""
        resume_file = str(resume_file)
        header, tensors = self.load_adapter(resume_file)
        meta = header["meta"]
        self.saved_model_file = meta.get("best_file") or resume_file
        self.start_epoch = meta["epoch"] + 1
        self.cur_step = meta["cur_step"]
        self._model.training_signals = meta.get("training_signals", 0)
        self.best_valid_score = meta["best_valid_score"]
        ckpt.load_optimizer_state(self.optimizer, header, tensors)
        self._restore_rng_states(ckpt.rng_states(tensors))
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return
        if load_best_model:
            path = model_file or self.saved_model_file
            wait_for_rank0(self.config)  # rank 0 may still be writing it
            self.load_adapter(path)
            self.logger.info(f"Loading trained adapters from {path}")
        with self._autocast():
            return super().evaluate(
                eval_data,
                load_best_model=False,
                show_progress=show_progress or self.eval_progress,
            )


_AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def bf16_is_native(device, cpuinfo="/proc/cpuinfo"):
    """Whether ``device`` multiplies in bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX. Elsewhere bf16 is emulated, and several times slower than float32
    (``benchmarks/experiments/scoring-speed/results/quantization.md``)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []
            )
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def model_and_training_rows(dataset, settings):
    """(config, InstructRec, the training rows its trainer reads) for ``dataset`` with
    ``settings``: the loss without a training run, for the speed and token benchmarks."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_instructrec.model.instructrec import InstructRec

    config = Config(model="InstructRec", dataset=dataset, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    train, _, _ = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset)
    if model.running_list:
        train = running_list_loader(config, train, model)
    return config, model, train


def running_list_loader(config, train_data, model):
    """``train_data`` restricted to the rows that end a window (:func:`window_end_rows`)."""
    dataset = train_data._dataset
    keep = window_end_rows(dataset.inter_feat[dataset.uid_field].numpy(), model)
    subset = dataset.copy(dataset.inter_feat[torch.from_numpy(keep)])
    return type(train_data)(config, subset, train_data._sampler, shuffle=train_data.shuffle)


def window_end_rows(users, model):
    """Which of RecBole's training rows (one per prefix, a user's rows consecutive and oldest
    first) end a window: the last row of each user and every ``max_history_items``-th row before
    it."""
    n = len(users)
    if n == 0:
        return np.zeros(0, dtype=bool)
    ends_run = np.r_[users[1:] != users[:-1], True]
    if ends_run.sum() != len(np.unique(users)):
        raise ValueError(
            "The running-list layout needs each user's training rows together and in time "
            "order, as RecBole's sequential datasets give them; this training set interleaves "
            "users. Use an instruction-layout template (e.g. seq-match-1) with it."
        )
    run_of_row = np.cumsum(np.r_[0, ends_run[:-1]])
    from_end = np.flatnonzero(ends_run)[run_of_row] - np.arange(n)
    return from_end % int(model.max_history_items) == 0


def _unused_path(path):
    """RecBole names checkpoints by the second; never overwrite an earlier run's file."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 1
    while os.path.exists(candidate):
        candidate = f"{stem}-{n}{ext}"
        n += 1
    return candidate
