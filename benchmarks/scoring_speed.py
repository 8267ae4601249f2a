"""Candidate-scoring speed: shared-prefix scoring against the naive one-sequence-per-candidate path.

For 10, 100 and 1,000 candidates per user, with real ml-100k prompts and the embedded SmolLM2:
candidates per second (naive and ours), tokens computed against the floor (each prompt token and
each candidate token once), peak memory, and the largest score difference from the naive path.
Each configuration runs in its own process so that its peak RSS is its own.

    python benchmarks/scoring_speed.py [--users 4] [--naive-candidates 40] [--out benchmarks/experiments/scoring-speed/results]
        [--dtype bfloat16] [--naive-batch 8] [--max-batch-tokens 4096] [--tag scoring_speed-gpu]

On a GPU (RecBole's ``device``, picked when CUDA is there), times are taken after
``torch.cuda.synchronize()`` and the peak is the GPU's allocated memory.

The naive path costs the same per candidate at every list size, so it is measured on the first
``--naive-candidates`` candidates of each user and its rate stated for that many.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _requests(n_users, n_candidates, dtype, llm_path, seed=0):
    import numpy as np
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_instructrec import InstructRec

    config = Config(
        model="InstructRec",
        dataset="ml-100k",
        config_dict={"lora_r": 0, "state": "ERROR", "llm_dtype": dtype, "llm_path": llm_path},
    )
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset).to(config["device"]).eval()
    rows = test._dataset.inter_feat[:n_users]
    rng = np.random.default_rng(seed)
    prompts, continuations = [], []
    for seq, length in zip(rows[model.ITEM_SEQ].tolist(), rows[model.ITEM_SEQ_LEN].tolist()):
        prompts.append(model.prompts.prompt_ids(seq[:length]))
        items = rng.choice(np.arange(1, model.n_items), n_candidates, replace=False)
        continuations.append([model.prompts.answer_ids(int(i)) for i in items])
    return model, prompts, continuations


def _naive(model, prompts, continuations, batch_rows=8):
    """One full sequence per (prompt, candidate), batched, right-padded."""
    import torch

    sums, tokens = [], 0
    rows = [(u, p, c) for u, (p, conts) in enumerate(zip(prompts, continuations)) for c in conts]
    for start in range(0, len(rows), batch_rows):
        batch = rows[start : start + batch_rows]
        width = max(len(p) + len(c) for _, p, c in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (_, p, c) in enumerate(batch):
            ids[r, : len(p) + len(c)] = torch.tensor(p + c)
            mask[r, : len(p) + len(c)] = 1
        tokens += ids.numel()
        device = next(model.parameters()).device
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logprobs = logits.to(torch.promote_types(logits.dtype, torch.float32))
        logprobs = logprobs.log_softmax(-1).cpu()
        for r, (_, p, c) in enumerate(batch):
            positions = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            sums.append(logprobs[r, positions, torch.tensor(c)].sum().item())
    return sums, tokens


def _float64_difference(llm, prompts, continuations, per_user, max_batch_tokens):
    """Largest |ours - naive| with both paths in float64, on ``per_user`` candidates per user.

    In float32 the two paths differ by rounding alone (different matrix shapes and mask paths
    through 30 layers); in float64 that rounding vanishes and any difference left would be a
    real error of the shared-prefix computation.
    """
    import copy

    import torch

    from recbole_instructrec.scoring.continuation import ContinuationScorer

    wide = copy.deepcopy(llm).to(torch.float64)
    subset = [c[:per_user] for c in continuations]
    scorer = ContinuationScorer(wide, max_batch_tokens=max_batch_tokens, max_row_tokens=2048)
    with torch.no_grad():
        ours = torch.cat([s.cpu() for s in scorer.score(prompts, subset).logprob_sums])
        naive, _ = _naive(wide, prompts, subset)
    return (ours - torch.tensor(naive, dtype=torch.float64)).abs().max().item()


def measure(
    n_users,
    n_candidates,
    naive_candidates,
    dtype,
    naive_batch,
    max_batch_tokens,
    llm_path,
    float64_check=0,
):
    import torch

    from recbole_instructrec.scoring.continuation import ContinuationScorer

    model, prompts, continuations = _requests(n_users, n_candidates, dtype, llm_path)
    llm = model.llm
    cuda = next(llm.parameters()).is_cuda
    floor = sum(len(p) + sum(map(len, c)) for p, c in zip(prompts, continuations))
    scorer = ContinuationScorer(llm, max_batch_tokens=max_batch_tokens, max_row_tokens=2048)

    def clock():
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    with torch.no_grad():
        scorer.score(prompts[:1], [continuations[0][:2]])  # warm-up
        _naive(llm, prompts[:1], [continuations[0][:2]], naive_batch)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        scorer.tokens_computed = 0
        start = clock()
        ours = scorer.score(prompts, continuations).logprob_sums
        ours_seconds = clock() - start
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        naive_conts = [c[:naive_candidates] for c in continuations]
        start = clock()
        naive_sums, naive_tokens = _naive(llm, prompts, naive_conts, naive_batch)
        naive_seconds = clock() - start
    ours_subset = torch.cat([s[:naive_candidates].float().cpu() for s in ours])
    max_diff = (ours_subset - torch.tensor(naive_sums)).abs().max().item()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the copy below
    float64_diff = (
        _float64_difference(llm, prompts, continuations, float64_check, max_batch_tokens)
        if float64_check
        else None
    )
    n_scored = n_users * n_candidates
    n_naive = sum(map(len, naive_conts))
    return {
        "users": n_users,
        "candidates_per_user": n_candidates,
        "ours_candidates_per_s": n_scored / ours_seconds,
        "naive_candidates_per_s": n_naive / naive_seconds,
        "naive_measured_candidates": n_naive,
        "speedup": (n_scored / ours_seconds) / (n_naive / naive_seconds),
        "floor_tokens": floor,
        "ours_tokens_computed": scorer.tokens_computed,
        "ours_tokens_over_floor": scorer.tokens_computed / floor,
        "naive_tokens_per_candidate": naive_tokens / n_naive,
        "max_abs_logprob_diff_vs_naive": max_diff,
        "max_abs_logprob_diff_vs_naive_float64": float64_diff,
        "float64_checked_candidates_per_user": float64_check,
        "peak_rss_mb": peak_rss,
        "peak_gpu_mb": peak_gpu,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": dtype,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--candidates", default="10,100,1000")
    parser.add_argument("--naive-candidates", type=int, default=40)
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "experiments", "scoring-speed", "results")
    )
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    parser.add_argument("--naive-batch", type=int, default=8, help="naive sequences per pass")
    parser.add_argument("--max-batch-tokens", type=int, default=4096)
    parser.add_argument("--tag", default="scoring_speed")
    parser.add_argument("--llm-path", default=None, help="default: the embedded SmolLM2")
    parser.add_argument(
        "--float64-check",
        type=int,
        default=4,
        help="candidates per user scored by both paths in float64 too (0: skip)",
    )
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        naive = min(args.naive_candidates, args.one)
        print(
            json.dumps(
                measure(
                    args.users,
                    args.one,
                    naive,
                    args.dtype,
                    args.naive_batch,
                    args.max_batch_tokens,
                    args.llm_path,
                    args.float64_check,
                )
            )
        )
        return
    rows = []
    for n in [int(x) for x in args.candidates.split(",")]:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--users",
            str(args.users),
            "--naive-candidates",
            str(args.naive_candidates),
            "--dtype",
            args.dtype,
            "--naive-batch",
            str(args.naive_batch),
            "--max-batch-tokens",
            str(args.max_batch_tokens),
            "--float64-check",
            str(args.float64_check),
        ] + (["--llm-path", args.llm_path] if args.llm_path else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    info = run_info("python benchmarks/scoring_speed.py " + " ".join(sys.argv[1:]))
    where = f"; {rows[0]['device']}, {args.dtype}, embedded SmolLM2-135M, {args.users} users"
    lines = provenance_lines(info, where) + [
        "| candidates/user | ours cand/s | naive cand/s | speedup | tokens computed / floor | "
        "naive tokens/cand | max abs diff of log p | same, both in float64 | peak RSS MB | "
        "peak GPU MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['candidates_per_user']} | {r['ours_candidates_per_s']:.1f} | "
            f"{r['naive_candidates_per_s']:.1f} | {r['speedup']:.1f}x | "
            f"{r['ours_tokens_over_floor']:.3f} | {r['naive_tokens_per_candidate']:.0f} | "
            f"{r['max_abs_logprob_diff_vs_naive']:.1e} | {_diff(r)} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_gpu_mb'] or 0:.0f} |"
        )
    save_report(args.out, args.tag, {"run": info, "results": rows}, lines)


def _diff(row):
    value = row.get("max_abs_logprob_diff_vs_naive_float64")
    return "-" if value is None else f"{value:.1e}"


if __name__ == "__main__":
    main()
