"""Training signals per second: one prompt per training prefix against every position at once.

    python benchmarks/training_speed.py [--steps 6] [--batch 4] [--negatives 4]
        [--variants per-prefix,running-list,...] [--tag training_speed]

A training signal is one positive with its ``--negatives`` sampled negatives (the listwise loss
and the generation loss of one prediction). Each variant trains InstructRec (the embedded
SmolLM2-135M with LoRA, RecBole's ml-100k training rows, the same seed) for ``--steps``
optimizer steps of ``--batch`` RecBole rows after one warm-up step, in its own process, and
reports:

* signals per second (forward, backward and optimizer step);
* tokens run through the network per signal (padding included);
* peak resident memory of the process.

Variants:

* ``per-prefix``: the instruction layout (``seq-match-1``): one prompt per training row, one
  signal per prompt;
* ``running-list``: the running-list layout (``seq-list``): a row is a window of
  ``max_history_items`` + 1 items and every position after the first is a signal, from one pass
  (RecBole's rows that end a window, as the trainer takes them);
* ``...-no-system``: the same with ``system_prompt: ''``, an empty system turn instead of the
  chat template's default system text;
* ``...-title-only-no-system``: both, and ``item_text_fields: [movie_title]``: item mentions
  without the release year (``benchmarks/experiments/training-objectives/configs/running-list-title-only.yaml``);
* ``...-no-lora-dropout``: ``lora_dropout: 0`` (peft then skips a dropout mask on the input of
  every adapted layer); ``...-bf16-autocast``: ``enable_amp`` (bfloat16 autocast, which runs
  oneDNN's bf16 matmuls on CPUs that have them). Both together, in the running list, are the
  default main job's settings.
* ``...-negatives-at-2-positions``, ``...-at-1-position``: ``train_negative_positions``: the
  negatives (and the listwise term) at 2 or 1 random positions of a row, the generation loss at
  every position; "negatives/signal" is then the measured mean;
* ``running-list-item-head``, ``...-compact``, ``...-both``: ``score_head: items``: a softmax
  over the catalogue at every position, no negative segments; with the default item text, with
  ``item_mentions: compact`` and ``max_history_items: 50`` (one position an item), and with
  ``item_mentions: both`` (that position, then the item's text);
* ``...-generation-only``: ``train_negatives: 0`` with bf16 autocast and no LoRA dropout: the
  positive's generation loss alone (the paper's objective), no negative segments: the default
  main job's settings otherwise; ``per-prefix-generation-only`` is the same objective with one
  prompt per prefix, the like-for-like comparison at 0 negatives.

Unless a variant says otherwise, every variant runs in float32 with LoRA dropout 0.05 (the
settings before the running list became the default), so that the layouts compare alone.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Item mentions without the release year, which SmolLM2 writes digit by digit: about half the
# tokens of a mention (benchmarks/experiments/training-speed/results/signal_tokens.md).
_TITLE_ONLY = {"item_text_fields": ["movie_title"]}
# The default main job's speed settings: bf16 autocast and no LoRA dropout.
_FAST = {"enable_amp": True, "lora_dropout": 0.0}
VARIANTS = {
    "per-prefix": {"eval_template": "seq-match-1"},
    "running-list": {"eval_template": "seq-list"},
    "per-prefix-no-system": {"eval_template": "seq-match-1", "system_prompt": ""},
    "running-list-no-system": {"eval_template": "seq-list", "system_prompt": ""},
    "per-prefix-title-only-no-system": {
        "eval_template": "seq-match-1",
        "system_prompt": "",
        **_TITLE_ONLY,
    },
    "running-list-title-only-no-system": {
        "eval_template": "seq-list",
        "system_prompt": "",
        **_TITLE_ONLY,
    },
    # peft skips its dropout masks on every adapted layer's input when the rate is 0
    "running-list-no-lora-dropout": {"eval_template": "seq-list", "lora_dropout": 0.0},
    # bfloat16 autocast: oneDNN's bf16 matmuls on CPUs that have them (avx512_bf16, AMX)
    "running-list-bf16-autocast": {"eval_template": "seq-list", "enable_amp": True},
    "per-prefix-bf16-autocast-no-lora-dropout": {
        "eval_template": "seq-match-1",
        **_FAST,
    },
    "running-list-bf16-autocast-no-lora-dropout": {
        "eval_template": "seq-list",
        **_FAST,
    },
    # the paper's objective: the positive's generation loss alone, in both layouts: one prompt
    # per prefix, and a plain causal pass over the running list
    "per-prefix-generation-only": {
        "eval_template": "seq-match-1",
        **_FAST,
        "train_negatives": 0,
    },
    "running-list-generation-only": {
        "eval_template": "seq-list",
        **_FAST,
        "train_negatives": 0,
    },
    # the mixed objective: negatives (the listwise term) at 1 or 2 random positions of a row,
    # the generation loss at all of them
    "running-list-negatives-at-2-positions": {
        "eval_template": "seq-list",
        **_FAST,
        "train_negative_positions": 2,
    },
    "running-list-negatives-at-1-position": {
        "eval_template": "seq-list",
        **_FAST,
        "train_negative_positions": 1,
    },
    # the item head: a softmax over the catalogue at every position, no negatives; with title
    # mentions (the default running list's item text) and with compact mentions (an item is
    # one input position, so a row holds RecBole's whole 50-item window)
    "running-list-item-head": {
        "eval_template": "seq-list",
        **_FAST,
        "score_head": "items",
    },
    "running-list-item-head-compact": {
        "eval_template": "seq-list",
        **_FAST,
        "score_head": "items",
        "item_mentions": "compact",
        "max_history_items": 50,
        "lm_loss_weight": 0,
    },
    # both: the compact position, then the item's text (the title mentions' window)
    "running-list-item-head-both": {
        "eval_template": "seq-list",
        **_FAST,
        "score_head": "items",
        "item_mentions": "both",
    },
}


def measure(variant, steps, batch, negatives, seed=2020):
    import torch

    from recbole_instructrec.trainer.trainer import model_and_training_rows

    settings = {
        "state": "ERROR",
        "train_batch_size": batch,
        "train_negatives": negatives,
        "seed": seed,
        # the settings the variants compare, from before they became the defaults
        "enable_amp": False,
        "lora_dropout": 0.05,
        "train_negative_positions": "all",
        **VARIANTS[variant],
    }
    config, model, train = model_and_training_rows("ml-100k", settings)
    optimizer = torch.optim.Adam(model.parameter_groups(), lr=config["learning_rate"])
    negatives_scored = _count_negatives(model)
    model.train()
    batches = iter(train)
    signals = seconds = 0.0
    for step in range(steps + 1):
        interaction = next(batches)
        signals_before = model.training_signals
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(config["enable_amp"])):
            loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        elapsed = time.perf_counter() - start
        if step == 0:  # warm-up
            model.scorer.tokens_computed = 0
            negatives_scored[0] = 0
            continue
        seconds += elapsed
        signals += model.training_signals - signals_before
    return {
        "variant": variant,
        "template": config["eval_template"],
        "system_prompt": config["system_prompt"],
        "steps": steps,
        "rows_per_step": batch,
        "negatives_per_signal": (
            negatives_scored[0] / signals if model.running_list else config["train_negatives"]
        ),
        "train_negative_positions": config["train_negative_positions"],
        "signals": int(signals),
        "seconds": seconds,
        "signals_per_s": signals / seconds,
        "tokens_per_signal": model.scorer.tokens_computed / signals,
        "training_rows": len(train._dataset),
        # one epoch = every training row once (train_steps_per_epoch: ~)
        "projected_epoch_hours": len(train._dataset) / (steps * batch / seconds) / 3600,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def _count_negatives(model):
    """A running counter of the negative segments the running-list scorer is given."""
    counter = [0]
    score = model.scorer.score_running_lists

    def counting(rows, negatives):
        counter[0] += sum(len(at_position) for row in negatives for at_position in row)
        return score(rows, negatives)

    model.scorer.score_running_lists = counting
    return counter


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "training-speed", "results"),
    )
    parser.add_argument("--tag", default="training_speed")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    command = "python benchmarks/training_speed.py " + " ".join(sys.argv[1:])
    if args.one:
        sys.argv = sys.argv[:1]  # RecBole reads the command line as settings
        print(json.dumps(measure(args.one, args.steps, args.batch, args.negatives)))
        return
    rows = []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            parser.error(f"--variants: unknown {variant!r}; choose from {', '.join(VARIANTS)}")
        cmd = [sys.executable, __file__, "--one", variant, "--steps", str(args.steps)]
        cmd += ["--batch", str(args.batch), "--negatives", str(args.negatives)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = rows[0]
    by_name = {row["variant"]: row for row in rows}
    for row in rows:
        row["signals_per_s_vs_first"] = row["signals_per_s"] / base["signals_per_s"]
        # like for like: the running list against one prompt per prefix with the same settings
        twin = by_name.get(row["variant"].replace("running-list", "per-prefix", 1))
        row["signals_per_s_vs_per_prefix_twin"] = (
            row["signals_per_s"] / twin["signals_per_s"] if twin and twin is not row else None
        )

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    info = run_info(command)
    lines = provenance_lines(
        info,
        f"; ml-100k training rows, embedded SmolLM2-135M + LoRA (r 8), float32 unless a "
        "variant sets bf16 autocast, "
        f"{args.batch} RecBole rows per step, {args.negatives} negatives per signal unless "
        "a variant sets train_negatives, "
        f"{args.steps} timed steps after one warm-up, each variant in its own process",
    ) + [
        "| variant | template | negatives/signal | signals/s | vs first row | "
        "vs per-prefix twin | tokens/signal | signals timed | "
        "s | training rows per epoch | projected epoch h | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        twin = r["signals_per_s_vs_per_prefix_twin"]
        lines.append(
            f"| {r['variant']} | {r['template']} | {r['negatives_per_signal']:.1f} | "
            f"{r['signals_per_s']:.2f} | {r['signals_per_s_vs_first']:.1f}x | "
            f"{'' if twin is None else f'{twin:.1f}x'} | "
            f"{r['tokens_per_signal']:.0f} | {r['signals']} | "
            f"{r['seconds']:.1f} | {r['training_rows']} | {r['projected_epoch_hours']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    save_report(args.out, args.tag, {"run": info, "results": rows}, lines)


if __name__ == "__main__":
    main()
