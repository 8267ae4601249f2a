"""Do the GPU paths train and evaluate? A few training steps and one evaluation for each.

    python benchmarks/gpu_check.py [--dataset ml-100k] [--steps 20] [--out benchmarks/experiments/gpu-check/results]
    python benchmarks/gpu_check.py --dataset tiny --data-path dataset --steps 2 \
        --llm-path <a tiny HF model> --out /tmp/gpu-check          # CPU rehearsal of the script

Checks, each in its own process (so a crash, or the GPU memory of one, stays its own):

* ``bf16``: ``llm_dtype: bfloat16``, the whole model in bfloat16;
* ``amp``: ``enable_amp: true``, float32 weights under bfloat16 autocast;
* ``gradient_checkpointing``: activations recomputed in the backward pass;
* ``qlora-4bit``: ``load_in_bits: 4`` (bitsandbytes NF4), LoRA on a frozen 4-bit base;
* ``nccl-2proc``: RecBole's launcher, ``nproc: 2``, one process per GPU over NCCL.

A check passes when training changed the LoRA adapters (every ``lora_B`` starts at zero, so
a non-zero one in the saved checkpoint proves an optimizer step reached it) and evaluation gave
finite metrics in [0, 1]. A check that the machine cannot run (no CUDA, no bitsandbytes, fewer
than 2 GPUs) is reported as skipped with the reason, never as passed.
"""

import argparse
import glob
import math
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECKS = {
    "bf16": {"llm_dtype": "bfloat16"},
    "amp": {"enable_amp": True},
    "gradient_checkpointing": {"gradient_checkpointing": True},
    "qlora-4bit": {"load_in_bits": 4},
    "nccl-2proc": {},
}
METRICS = ("hit@1", "ndcg@5")


def why_skipped(name):
    """The reason this machine cannot run check ``name``, or None."""
    import importlib.util

    import torch

    if name in ("qlora-4bit", "nccl-2proc") and not torch.cuda.is_available():
        return "needs a CUDA GPU"
    if name == "qlora-4bit" and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    if name == "nccl-2proc" and torch.cuda.device_count() < 2:
        return f"needs 2 GPUs, this machine has {torch.cuda.device_count()}"
    return None


def _run_check(name, settings, answers):
    import torch
    from safetensors import safe_open

    import recbole_instructrec

    start = time.perf_counter()
    try:
        nproc = 2 if name == "nccl-2proc" else 1
        result = recbole_instructrec.run(
            "InstructRec", settings.pop("dataset"), config_dict=settings, nproc=nproc
        )
        (saved,) = [
            path
            for path in glob.glob(os.path.join(settings["checkpoint_dir"], "*.safetensors"))
            if not path.endswith(".resume.safetensors")
        ]
        with safe_open(saved, framework="pt") as f:
            lora_b = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
        test = {k: float(result["test_result"][k]) for k in METRICS}
        answer = {
            "trained": bool(lora_b) and any(bool(t.abs().sum() > 0) for t in lora_b),
            "evaluated": all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in test.values()),
            "test": test,
        }
        answer["status"] = "passed" if answer["trained"] and answer["evaluated"] else "failed"
    except Exception as err:  # a failed check is a result, reported with its error
        answer = {"status": "failed", "error": f"{type(err).__name__}: {str(err)[:500]}"}
    answer["seconds"] = round(time.perf_counter() - start, 1)
    if torch.cuda.is_available():
        answer["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    answers.put(answer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--llm-path", default=None, help="default: the embedded SmolLM2")
    parser.add_argument("--checks", default=",".join(CHECKS))
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "experiments", "gpu-check", "results")
    )
    parser.add_argument("--tag", default="gpu_check")
    args = parser.parse_args()
    command = "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole reads the command line as settings

    import multiprocessing

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    rows = []
    for name in args.checks.split(","):
        if name not in CHECKS:
            parser.error(f"--checks: unknown check {name!r}; choose from {', '.join(CHECKS)}")
        reason = why_skipped(name)
        if reason:
            rows.append({"check": name, "status": "skipped", "reason": reason})
            continue
        settings = {
            "dataset": args.dataset,
            "epochs": 1,
            "train_steps_per_epoch": args.steps,
            "valid_max_users": 50,
            "state": "ERROR",
            "show_progress": False,
            "checkpoint_dir": tempfile.mkdtemp(prefix=f"gpu-check-{name}-"),
            "enable_amp": False,  # each check alone: autocast only in the amp check
            **CHECKS[name],
        }
        if args.llm_path:
            settings["llm_path"] = os.path.abspath(args.llm_path)
        if args.data_path:
            settings["data_path"] = os.path.abspath(args.data_path)
        context = multiprocessing.get_context("spawn")
        answers = context.Queue()
        process = context.Process(target=_run_check, args=(name, settings, answers))
        process.start()
        process.join()
        answer = (
            answers.get()
            if not answers.empty()
            else {"status": "failed", "error": f"process exit code {process.exitcode}"}
        )
        rows.append({"check": name, "settings": CHECKS[name], **answer})
        print(name, rows[-1], flush=True)
    info = run_info(command)
    lines = provenance_lines(
        info, f"; {args.dataset}, {args.steps} training steps per check, then a full test pass"
    ) + [
        "| check | settings | status | LoRA trained | test HR@1 | test NDCG@5 | s | peak GPU GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        test = r.get("test", {})
        status = r["status"] + (f": {r['reason']}" if "reason" in r else "")
        status += f" ({r['error']})" if "error" in r else ""
        lines.append(
            f"| {r['check']} | `{CHECKS[r['check']]}` | {status} | {r.get('trained', '-')} | "
            f"{test.get('hit@1', '-')} | {test.get('ndcg@5', '-')} | {r.get('seconds', '-')} | "
            f"{r.get('peak_gpu_gib', '-')} |"
        )
    save_report(args.out, args.tag, {"run": info, "results": rows}, lines)
    return 0 if all(r["status"] != "failed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
