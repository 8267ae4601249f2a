"""Side-by-side benchmark: one split, identical stored candidates, every model.

For each dataset: (optionally) a deterministic user sample, RecBole's leave-one-out split, and
one seeded draw of test candidates, stored as tokens under the output folder. Each model is
trained by RecBole's own trainer (validation on RecBole's sampled validation set picks its best
epoch) and is then scored on exactly the stored candidates. Every result records the SHA-256 of
the candidates it was scored on, its training and evaluation wall time, its trainable
parameters, the command, the commit and the machine.
"""

import gc
import os
import time

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed

from recbole_instructrec.bench import candidates as cand
from recbole_instructrec.bench import cold_items, derived_rows, evaluation
from recbole_instructrec.bench import instruction_tasks as tasks_lib
from recbole_instructrec.bench.convergence import fit_to_convergence
from recbole_instructrec.bench.report import HEADLINE, run_info, write_results
from recbole_instructrec.bench.user_sample import sample_users
from recbole_instructrec.data.training_counts import counts_from_dataset
from recbole_instructrec.jsonable import jsonable
from recbole_instructrec.scoring.ranking import positive_ranks
from recbole_instructrec.scoring.retriever import read_checkpoint

# Issue 8's building blocks: item tokens from the SASRec row of the same run ("@<row>" names the
# checkpoint another row wrote); items SASRec barely saw (the cold slice's) sharing one learned
# token instead of their own; SASRec's scores fused with the LLM's (weight fitted on validation).
_SASREC_ITEM_TOKENS = {"item_id_tokens": True, "collab_model_checkpoint": "@SASRec"}
_GATE_RARE_ITEMS = {"item_token_min_interactions": cold_items.COLD_MAX_TRAIN_INTERACTIONS + 1}
_FUSE_SASREC = {"fusion_model": "@SASRec"}
_ZERO_SHOT = {"epochs": 0, "lora_r": 0}
# The default main job before the running list became the default (one prompt per training
# prefix, 40 steps of 4: 160 training signals), kept so that its rows can be rerun and compared.
_PER_PREFIX = {
    "eval_template": "seq-match-1",
    "train_steps_per_epoch": 40,
    "lora_dropout": 0.05,
    "enable_amp": False,
    "item_text_categories": False,
}

# The item head reading compact mentions: a history item is one position, so a row holds
# RecBole's whole 50-item window and a batch 16 rows (about 530 signals) at a text step's cost.
# No text to generate: no generation term.
_COMPACT_ITEM_HEAD = {
    "score_head": "items",
    "item_mentions": "compact",
    "max_history_items": 50,
    "train_batch_size": 16,
    "lm_loss_weight": 0,
}

# Named variants: a RecBole model plus the settings that make the variant.
VARIANTS = {
    "InstructRec-zeroshot": ("InstructRec", _ZERO_SHOT),
    "InstructRec-LoRA": ("InstructRec", {}),
    "InstructRec-ItemHead": ("InstructRec", {"score_head": "items"}),
    "InstructRec-ItemHead-compact": ("InstructRec", _COMPACT_ITEM_HEAD),
    "InstructRec-ItemHead-both": ("InstructRec", {"score_head": "items", "item_mentions": "both"}),
    # The hybrid item head: SASRec's item embeddings as the compact history items (item tokens)
    # and added to the item head's output vectors.
    "InstructRec-ItemHead-hybrid": (
        "InstructRec",
        {**_COMPACT_ITEM_HEAD, **_SASREC_ITEM_TOKENS, "item_head_collab": True},
    ),
    # ... and its scores fused with SASRec's, the weight fitted on validation users.
    "InstructRec-ItemHead-hybrid-fused": (
        "InstructRec",
        {**_COMPACT_ITEM_HEAD, **_SASREC_ITEM_TOKENS, "item_head_collab": True, **_FUSE_SASREC},
    ),
    "InstructRec-LoRA-prefix": ("InstructRec", _PER_PREFIX),
    "InstructRec-Hybrid": ("InstructRec", _SASREC_ITEM_TOKENS),
    "InstructRec-Hybrid-learned": ("InstructRec", {"item_id_tokens": True}),
    "InstructRec-Hybrid-gated": ("InstructRec", {**_SASREC_ITEM_TOKENS, **_GATE_RARE_ITEMS}),
    "InstructRec-Hybrid-fused": ("InstructRec", {**_SASREC_ITEM_TOKENS, **_FUSE_SASREC}),
    "InstructRec-Hybrid-gated-fused": (
        "InstructRec",
        {**_SASREC_ITEM_TOKENS, **_GATE_RARE_ITEMS, **_FUSE_SASREC},
    ),
    "InstructRec-LoRA-fused": ("InstructRec", _FUSE_SASREC),
    "InstructRec-zeroshot-fused": ("InstructRec", {**_ZERO_SHOT, **_FUSE_SASREC}),
}
# SASRec-tuned: a validation grid of settings published for SASRec on small datasets. Each
# point trains to early stopping; the row keeps the point with the best validation score and
# only that one is scored on test.
TUNED_GRID_SOURCE = (
    "dropout 0.2 for dense data (MovieLens-1M) and 0.5 for sparse data: Kang & McAuley, ICDM "
    "2018; dropout 0.1-0.2 with the full cross-entropy loss (RecBole's CE): Klenitskiy & "
    "Vasilev, RecSys 2023; batch 512 for more updates per epoch, as the issue's amazon check; "
    "learning rate 0.001 (RecBole's default, and both papers')"
)
TUNED_VARIANTS = {
    "SASRec-tuned": (
        "SASRec",
        [
            {"hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "train_batch_size": 512},
            {"hidden_dropout_prob": 0.1, "attn_dropout_prob": 0.1, "train_batch_size": 512},
        ],
    ),
}
DEFAULT_MODELS = [
    "SASRec",
    "SASRec-tuned",
    "BERT4Rec",
    "InstructRec-zeroshot",
    "InstructRec-LoRA",
]
BASELINE_SETTINGS = {
    # Trained to early stopping on validation (RecBole's own rule and patience: more than
    # stopping_step evaluations without gain); the epoch cap is a guard that should not bind,
    # and a row that reaches it (or a time_limit_minutes) says so in its report.
    "epochs": 300,
    "stopping_step": 10,
    # An epoch runs the whole transformer over every position of every one of the ~97,000
    # training prefixes of ml-100k, though the loss reads only the last position: its cost is
    # linear in the padded length
    # (benchmarks/experiments/baselines/results/baseline_epoch_cost.md). 20 items, twice
    # the LLM's history (max_history_items: 10), makes a converged run affordable on 2 cores.
    "MAX_ITEM_LIST_LENGTH": 20,
    "train_neg_sample_args": None,
    # No item features: RecBole's sequential loader would join them onto every item of every
    # history (~50x slower epochs) though ID models never read them. The .item file's ids are
    # loaded, so the item vocabulary is InstructRec's and a checkpoint can feed its item tokens.
    "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
}
# Candidates are drawn from the items users interacted with (as in every earlier run).
INTERACTIONS_ONLY = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
PROTOCOL_KS = {"uni9": [1, 3, 5], "full": [1, 5, 10, 20]}


def run_benchmark(
    datasets=("ml-100k",),
    models=tuple(DEFAULT_MODELS),
    protocol="uni9",
    max_users=None,
    data_path=None,
    model_settings=None,
    common_settings=None,
    out_dir="bench-results",
    seed=2020,
    tag=None,
    command=None,
    tasks=("sequential",),
    stored_rows=None,
    trained_rows=None,
):
    """Run every model on every dataset; returns the list of result records.

    ``tasks`` (:mod:`.instruction_tasks`): each InstructRec row is scored on the same stored
    candidates under each task's instruction, from one training; a baseline, which reads no
    instruction, is scored once for all. With more than the sequential task, each task writes
    its own result files, with the category rule's row where SASRec's scores are at hand.
    ``stored_rows`` ({row: bench-*.json}) takes a row's scores from an earlier run on the same
    candidates instead of training it again (a converged baseline costs hours).
    ``trained_rows`` ({row: bench-*.json}) evaluates a row from the checkpoint it saved in an
    earlier run, without training (the same model under another protocol)."""
    model_settings = dict(model_settings or {})
    stored_rows = stored_rows or {}
    for name, result_file in (trained_rows or {}).items():
        trained = derived_rows.trained_checkpoint(name, result_file)
        model_settings[name] = {**model_settings.get(name, {}), "trained_checkpoint": trained}
    tasks = list(tasks)
    ks = PROTOCOL_KS.get(protocol, [1, 5, 10])
    cand.parse_protocol(protocol)  # fail fast on a bad protocol
    stamp = tag or time.strftime("%Y%m%d-%H%M%S")
    # the code that runs: its commit, read before anything runs (a run takes hours, and the
    # checkout may move on meanwhile), and kept for every file the run writes
    provenance = run_info(command)
    provenance["started"] = provenance.pop("finished")
    done = {task: [] for task in tasks}  # every dataset's rows so far, by task
    cache = os.path.join(out_dir, "tmp")
    for dataset in datasets:
        ds_path = data_path or "dataset"
        ds_name = dataset
        if max_users:
            ds_path, ds_name = sample_users(ds_path, dataset, int(max_users), seed, cache)
        common = _common_settings(ds_path, protocol, seed, cache, common_settings)
        # Candidates come from the interaction-only vocabulary, which every model shares
        # (InstructRec's, with the .item file loaded, is a superset); they are stored as tokens.
        reference = _prepare(
            "SASRec", ds_name, {**common, **BASELINE_SETTINGS, **INTERACTIONS_ONLY}
        )
        config, _, full_dataset, test_dataset = reference
        candidates = (
            None
            if protocol == "full"
            else cand.draw_candidates(test_dataset, full_dataset, protocol, seed)
        )
        candidate_file = os.path.join(out_dir, f"candidates-{ds_name}-{protocol}.jsonl")
        if candidates is not None:
            cand.save_candidates(candidate_file, candidates, test_dataset)
        tokens = cand.candidate_tokens(candidates, test_dataset)
        # From a fresh load: the split has already rewritten full_dataset's interactions.
        train_counts = counts_from_dataset(create_dataset(config))
        checkpoints = {}  # row -> the checkpoint it wrote, for "@<row>" settings
        digest = None if candidates is None else cand.candidate_hash(candidates, test_dataset)
        fields = dict(
            dataset=dataset,
            dataset_loaded=ds_name,
            max_users=max_users,
            protocol=protocol,
            candidates_file=os.path.relpath(candidate_file) if candidates is not None else None,
        )
        for name in models:
            if name in stored_rows:
                _log(f"[{dataset}] {name}: scores of {stored_rows[name]}")
                stored = derived_rows.stored_row(name, stored_rows[name], digest)
                by_task = dict.fromkeys(tasks, stored)
                if stored.get("checkpoint") and os.path.exists(stored["checkpoint"]):
                    checkpoints[name] = stored["checkpoint"]  # "@<row>" may read it
            elif name == derived_rows.POPULARITY_ROW:
                path = os.path.join(out_dir, "scores", stamp, f"{ds_name}-{name}.jsonl.gz")
                row = derived_rows.popularity_row(
                    tokens, test_dataset, train_counts, digest, path, ks, seed
                )
                by_task = dict.fromkeys(tasks, row)
            else:
                _log(f"[{dataset}] {name}: training and evaluating")
                by_task = _run_one(
                    name,
                    ds_name,
                    common,
                    model_settings.get(name, {}),
                    tokens,
                    protocol,
                    ks,
                    os.path.join(out_dir, "scores", stamp, f"{ds_name}-{name}.jsonl.gz"),
                    train_counts,
                    checkpoints,
                    tasks,
                    lambda task, rows, fields=fields: _write_task(
                        done,
                        task,
                        [dict(r, task=task, **fields) for r in rows],
                        provenance,
                        out_dir,
                        stamp,
                        quiet=True,
                    ),
                )
                checkpoints[name] = next(iter(by_task.values()))["checkpoint"]
            for task, record in by_task.items():
                record = dict(record, task=task, **fields)
                rows = [record] + (
                    [_before_fusion_row(record)] if "before_fusion" in record else []
                )
                done[task] += rows
                _log(
                    f"[{dataset}] {name} ({task}): "
                    + ", ".join(
                        f"{k}={record['metrics'][k]:.4f}"
                        for k in HEADLINE
                        if k in record["metrics"]
                    )
                )
            if name == "SASRec" and tasks != ["sequential"]:  # the rule breaks ties by it
                cold = evaluation.cold_test_users(test_dataset, train_counts)
                derived_rows.add_rule_rows(
                    done, dataset, test_dataset, out_dir, stamp, ds_name, ks, cold
                )
            # Free the row's LLM (model, trainer and merged copy hold reference cycles) before
            # the next one loads: a 7-row run reached 21 GB of peak RSS.
            gc.collect()
            # Written after every model, so a long run that is stopped keeps what it finished.
            for task in tasks:
                _write_task(done, task, [], provenance, out_dir, stamp, quiet=True)
    for task in tasks:
        _write_task(done, task, [], provenance, out_dir, stamp)
    return [record for task in tasks for record in done[task]]


def _write_task(done, task, extra, provenance, out_dir, stamp, quiet=False):
    """The result files of one task: ``bench-<tag>`` for a sequential-only run, else
    ``bench-<tag>-<task>``; ``extra`` rows (a task scored before the model's other tasks)
    are written with the finished ones."""
    records = done[task] + list(extra)
    if not records:
        return
    stem = f"bench-{stamp}" if list(done) == ["sequential"] else f"bench-{stamp}-{task}"
    finished = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    write_results(records, {**provenance, "finished": finished}, out_dir, stem, quiet=quiet)


def _common_settings(data_path, protocol, seed, cache, extra):
    mode = protocol if protocol != "full" else "full"
    return {
        "data_path": data_path,
        "seed": seed,
        "reproducibility": True,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": {"valid": mode, "test": mode},
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [1, 3, 5, 10],
        "valid_metric": "NDCG@5",
        "checkpoint_dir": os.path.join(cache, "saved"),
        "show_progress": False,
        "log_wandb": False,
        "state": "WARNING",
        **(extra or {}),
    }


def _prepare(model_name, dataset, settings):
    config = Config(model=model_name, dataset=dataset, config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    full_dataset = create_dataset(config)
    train, valid, test = data_preparation(config, full_dataset)
    return config, (train, valid, test), full_dataset, test._dataset


def resolve_model(name):
    """(RecBole model, variant settings, validation grid) of a benchmark row name.

    A variant name may carry a suffix to tell two configurations apart, e.g.
    ``InstructRec-LoRA-120steps`` with its settings from ``--model-config``. The grid is a list
    of settings to choose from on validation (one empty point for an untuned row).
    """
    tuned = _longest_variant(name, TUNED_VARIANTS)
    if tuned:
        model_name, grid = TUNED_VARIANTS[tuned]
        return model_name, {}, grid
    variant = _longest_variant(name, VARIANTS)
    return (*VARIANTS[variant], [{}]) if variant else (name, {}, [{}])


def _longest_variant(name, table):
    """The longest key of ``table`` that ``name`` is, or starts with followed by "-"."""
    for variant in sorted(table, key=len, reverse=True):
        if name == variant or name.startswith(variant + "-"):
            return variant
    return None


def _run_one(
    name,
    dataset,
    common,
    overrides,
    tokens,
    protocol,
    ks,
    scores_file,
    train_counts,
    checkpoints,
    tasks=("sequential",),
    on_task_done=None,
):
    """{task: record} of one row: trained once, scored under each task's instruction."""
    tasks = list(tasks)
    model_name, variant, grid = resolve_model(name)
    overrides = dict(overrides)
    tuned = len(grid) > 1
    # A --model-config may narrow or replace a row's grid, e.g. to train to convergence only the
    # point an earlier (validation-only) run chose; the record keeps the grid that was run.
    given_grid = overrides.pop("validation_grid", None)
    if given_grid is not None:
        grid, tuned = _checked_grid(name, given_grid), True
    settings = {**common}
    if model_name != "InstructRec":
        settings.update(BASELINE_SETTINGS)
    settings.update(variant)
    settings = {k: _row_checkpoint(name, k, v, checkpoints) for k, v in settings.items()}
    overrides = {k: _row_checkpoint(name, k, v, checkpoints) for k, v in overrides.items()}
    start = time.time()
    tried = []
    for point in grid:
        trained = _train_row(name, model_name, dataset, {**settings, **point, **overrides})
        tried.append((point, trained))
    # Validation alone picks the grid point (RecBole's best_valid_score of each point).
    point, (config, model, trainer, (train, valid, test), test_dataset, convergence) = max(
        tried,
        key=lambda t: (t[1][5] or {}).get("best_valid_score") or float("-inf"),
    )
    grid_record = (
        {
            "source": TUNED_GRID_SOURCE,
            "chosen_by": "best validation score",
            "grid_from_model_config": given_grid is not None,
            "points": [{"settings": p, "convergence": t[5]} for p, t in tried],
        }
        if tuned
        else None
    )
    del tried
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if getattr(model, "fusion_weight_unfitted", lambda: False)():
        trainer.fit_fusion_weight(valid)  # without training; fit() does it after training
    train_time = time.time() - start
    cold = evaluation.cold_test_users(test_dataset, train_counts)
    common_record = {
        "checkpoint": (
            trainer.saved_model_file if os.path.isfile(str(trainer.saved_model_file)) else None
        ),
        "fusion_weight": getattr(model, "fusion_weight", None),
        "model": name,
        "recbole_model": model_name,
        "settings": {k: jsonable(v) for k, v in {**variant, **point, **overrides}.items()},
        "convergence": convergence,
        "validation_grid": grid_record,
        "train_seconds": round(train_time, 1),
        "trainable_parameters": int(trainable),
        # predictions the LLM was trained on (one per prompt or per running-list position)
        "training_signals": getattr(model, "training_signals", None),
    }
    by_task = {}
    for task in tasks:
        if by_task and model_name != "InstructRec":  # it reads no instruction: one scoring
            by_task[task] = next(iter(by_task.values()))
            continue
        if model_name == "InstructRec" and tasks != ["sequential"]:
            template, held_out, _ = tasks_lib.TASKS[task]
            model.use_eval_template(template, held_out_phrasings=held_out)
        task_file = (
            scores_file
            if task == "sequential" or model_name != "InstructRec"
            else scores_file.replace(".jsonl.gz", f"-{task}.jsonl.gz")
        )
        by_task[task] = {
            **common_record,
            **_evaluate(name, model, test_dataset, test, config, tokens, ks, task_file, cold),
        }
        if on_task_done is not None and len(tasks) > 1:
            on_task_done(task, [by_task[task]])
    return by_task


def _evaluate(name, model, test_dataset, test, config, tokens, ks, scores_file, cold):
    """A trained model's ranks on the stored candidates (or over every item) and its record."""
    start = time.time()
    llm_scores = None
    if tokens is None:
        ranks = evaluation.full_ranks(model, test_dataset, test, config)
        digest = None
    else:
        ids = cand.candidate_ids(tokens, test_dataset)
        digest = cand.candidate_hash(ids, test_dataset)
        scores, llm_scores = evaluation.sampled_scores(
            model, test_dataset, ids, config["eval_batch_size"]
        )
        user_tokens = test_dataset.field2id_token[test_dataset.uid_field]
        users = user_tokens[test_dataset.inter_feat[test_dataset.uid_field].numpy()]
        ranks = positive_ranks(scores, name, users)
        evaluation.save_scores(scores_file, scores, ids, test_dataset)
    eval_time = time.time() - start
    extra = {}
    if llm_scores is not None:
        llm_file = scores_file.replace(".jsonl.gz", "-before-fusion.jsonl.gz")
        evaluation.save_scores(llm_file, llm_scores, ids, test_dataset)
        extra["before_fusion"] = {
            "scores_file": llm_file,
            **evaluation.rank_summary(
                positive_ranks(llm_scores, f"{name} before fusion", users), ks, cold
            ),
        }
    return {
        "scores_file": scores_file if tokens is not None else None,
        **evaluation.rank_summary(ranks, ks, cold),
        "candidates_sha256": digest,
        "eval_seconds": round(eval_time, 1),
        **extra,
    }


def _checked_grid(name, grid):
    """``validation_grid`` of a --model-config: a non-empty list of settings mappings."""
    if not (isinstance(grid, list) and grid and all(isinstance(p, dict) for p in grid)):
        raise ValueError(
            f"Row {name}: validation_grid must be a non-empty list of settings mappings, e.g. "
            "[{hidden_dropout_prob: 0.2, attn_dropout_prob: 0.2}]; got " + repr(grid)
        )
    return grid


def _train_row(name, model_name, dataset, settings):
    """(config, model, trainer, loaders, test dataset, convergence record) of one setting: a
    baseline trained to early stopping, InstructRec by its own trainer, or a saved model."""
    settings = dict(settings)
    time_limit = settings.pop("time_limit_minutes", None)
    # A row may evaluate a model trained elsewhere (e.g. by run_recbole) instead of training.
    trained = settings.pop("trained_checkpoint", None)
    if trained and not os.path.isfile(str(trained)):
        raise ValueError(
            f"Row {name}: trained_checkpoint={trained!r} does not exist; give the file that "
            "run_recbole saved under checkpoint_dir."
        )
    if trained and model_name != "InstructRec":
        # A saved baseline is evaluated with the history length it was trained with.
        saved_config = read_checkpoint(trained, "trained_checkpoint")["config"]
        settings["MAX_ITEM_LIST_LENGTH"] = saved_config["MAX_ITEM_LIST_LENGTH"]
    config, loaders, _, test_dataset = _prepare(model_name, dataset, settings)
    train, valid, _ = loaders
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(model_name)(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    convergence = None
    if trained:
        trainer.saved_model_file = str(trained)
        _load_best(trainer, model)
    elif config["epochs"] > 0:
        # InstructRec rows too: their validation curve is recorded, and a validation grid
        # chooses among their points by it
        limit = None if time_limit is None else 60 * float(time_limit)
        convergence = fit_to_convergence(
            trainer, train, valid, limit, show_progress=model_name == "InstructRec"
        )
        _log(
            f"  {name}: {convergence['stop_reason']} after {convergence['epochs_run']} epochs, "
            f"best epoch {convergence['best_epoch']} ({convergence['valid_metric']} "
            f"{convergence['best_valid_score']})"
        )
        _load_best(trainer, model)
    return config, model, trainer, loaders, test_dataset, convergence


def _before_fusion_row(record):
    """A fused row's LLM on its own: its scores come from the same evaluation pass (no second
    run), so its cost is the fused row's."""
    row = {**record, **record.pop("before_fusion")}
    row.update(model=f"{record['model']} before fusion", fusion_weight=None)
    row["settings"] = {**record["settings"], "scored_without": "fusion_model"}
    return row


def _row_checkpoint(name, key, value, checkpoints):
    """``"@SASRec"``: the checkpoint the SASRec row of this run wrote."""
    if not (isinstance(value, str) and value.startswith("@")):
        return value
    row = value[1:]
    if not checkpoints.get(row):
        raise ValueError(
            f"Row {name} sets {key}={value!r}: the checkpoint of row {row}, but no trained {row} "
            f"row ran before it, and no --stored-row {row} whose checkpoint is on this machine. "
            f"List {row} before {name} in --models."
        )
    return checkpoints[row]


def _load_best(trainer, model):
    path = trainer.saved_model_file
    if hasattr(trainer, "load_adapter"):
        trainer.load_adapter(path)
    else:
        state = read_checkpoint(path, "trained_checkpoint", map_location=trainer.device)
        model.load_state_dict(state["state_dict"])
        model.load_other_parameter(state.get("other_parameter"))


def _log(message):
    print(message, flush=True)
