"""Does a typed instruction move the recommendations the asked way, and how long does a request
take? ``instructrec recommend``'s engine (``Recommender``) on ml-100k.

    python benchmarks/instruction_following.py [--users 50] [--candidates 100]
        [--full-requests 50] [--checkpoint saved/InstructRec-....safetensors]
        [--fusion-weights 0,1,10] [--guidance 1,3] [--set fusion_weight=10]

For a seeded sample of users, each with a seeded pool of unseen candidate items, the same request
is made without an instruction and with each instruction. An instruction asks for a genre; the
check is the share of that genre (ml-100k's ``class`` field) among the top 10, against the same
share without the instruction and in the pool itself. Every request is timed: p50/p95 latency
for the pool size, and for the whole catalogue (``--full-requests`` requests, no instruction).

A fused model (``fusion_model``) is checked at its own fitted weight and at each of
``--fusion-weights``: the fusion model reads no instruction, so its weight decides how much say
the instruction keeps. ``--guidance`` ranks with instruction guidance (see
``recbole_instructrec.quick_start.recommend``), its baseline being the same user's request
without an instruction. One scoring pass per request serves every weight.
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

INSTRUCTIONS = {"a comedy": "Comedy", "something scary": "Horror"}


def _numbers(text):
    return [float(x) for x in text.split(",") if x.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--full-requests", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="adapter checkpoint (none: zero-shot)")
    parser.add_argument("--llm-path", default=None, help="default: the embedded SmolLM2")
    parser.add_argument(
        "--fusion-weights", default="", help="extra weights to rank a fused model with, e.g. 0,1"
    )
    parser.add_argument(
        "--guidance", default="", help="instruction guidance weights to rank with, e.g. 1,3"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a recommender setting"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--tag", default="instruction-following-ml-100k")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    command = " ".join(["python"] + sys.argv)
    sys.argv = sys.argv[:1]

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report
    from recbole_instructrec.prompts.intentions import item_categories
    from recbole_instructrec.quick_start.cli import key_values
    from recbole_instructrec.quick_start.recommend import Recommender

    settings = {"llm_path": args.llm_path} if args.llm_path else {}
    settings.update(key_values(args.set))
    rec = Recommender("ml-100k", checkpoint=args.checkpoint, config_dict=settings)
    genres = item_categories(rec.config, rec.dataset)
    user_tokens = rec.dataset.field2id_token[rec.dataset.uid_field][1:]
    rng = np.random.RandomState(args.seed)
    users = sorted(rng.choice(user_tokens, args.users, replace=False).tolist(), key=int)
    conditions = [None] + list(INSTRUCTIONS)
    wanted = sorted(set(INSTRUCTIONS.values()))

    def share(items, genre):
        return float(np.mean([genre in genres[i] for i in items])) if items else 0.0

    fused = bool(rec.model._fusion_model)
    # (fusion weight, instruction guidance); None: as served (the model's and the setting's)
    variants = [(None, None)]
    variants += [(w, None) for w in _numbers(args.fusion_weights)] if fused else []
    variants += [(None, g) for g in _numbers(args.guidance)]
    shares = {v: {str(c): {g: [] for g in wanted} for c in conditions} for v in variants}
    pool_share = {g: [] for g in wanted}
    latency = {str(c): [] for c in conditions}
    example = None
    token2id = rec.dataset.field2token_id[rec.dataset.iid_field]
    for n, user in enumerate(users, 1):
        history = set(rec.user_history(user))
        unseen = [i for i in range(1, rec.model.n_items) if i not in history]
        pool = rng.choice(unseen, args.candidates, replace=False).tolist()
        for g in wanted:
            pool_share[g].append(share(pool, g))
        uninstructed = None
        for condition in conditions:  # None first: its scores are the others' guidance baseline
            start = time.perf_counter()
            scored = rec.score(user=user, instruction=condition, candidates=pool, guidance=0)
            rec.rank(scored, args.top_k)
            latency[str(condition)].append(time.perf_counter() - start)
            if condition is None:
                uninstructed = scored.llm_scores
            else:
                scored = dataclasses.replace(scored, uninstructed_scores=uninstructed)
            for weight, guidance in variants:
                result = rec.rank(scored, args.top_k, fusion_weight=weight, guidance=guidance)
                top = [token2id[row["item_id"]] for row in result.items]
                for g in wanted:
                    shares[weight, guidance][str(condition)][g].append(share(top, g))
                if n == 1 and (weight, guidance) == (None, None):
                    example = example or {"user": user, "lists": {}}
                    example["lists"][str(condition)] = [
                        dict(row, genres=" ".join(genres[token2id[row["item_id"]]]))
                        for row in result.items
                    ]
        print(f"[instruction-following] user {n}/{len(users)}", flush=True)

    full_latency = []
    for n, user in enumerate(users[: args.full_requests], 1):
        start = time.perf_counter()
        rec.recommend(user=user, top_k=args.top_k)
        full_latency.append(time.perf_counter() - start)
        print(
            f"[instruction-following] whole catalogue {n}/{args.full_requests}: "
            f"{full_latency[-1]:.1f} s",
            flush=True,
        )

    def percentiles(values):
        return {
            "requests": len(values),
            "p50_s": round(float(np.percentile(values, 50)), 3) if values else None,
            "p95_s": round(float(np.percentile(values, 95)), 3) if values else None,
        }

    def mean_shares(per_condition):
        return {
            c: {g: round(float(np.mean(v)), 4) for g, v in per.items()}
            for c, per in per_condition.items()
        }

    summary = {
        "share_in_top_k": mean_shares(shares[None, None]),
        "share_in_pool": {g: round(float(np.mean(v)), 4) for g, v in pool_share.items()},
        "latency": {
            f"{args.candidates} candidates, instruction={c}": percentiles(v)
            for c, v in latency.items()
        },
        "latency_whole_catalogue": dict(
            percentiles(full_latency), candidates=rec.model.n_items - 1
        ),
        "instruction_guidance": rec.instruction_guidance,
        "share_in_top_k_by_guidance": {
            str(g): mean_shares(shares[w, g]) for w, g in variants if g is not None
        },
    }
    if fused:
        summary["fusion_weight"] = rec.model.fusion_weight
        summary["fusion_model"] = rec.model.fusion_model
        summary["share_in_top_k_by_fusion_weight"] = {
            str(w): mean_shares(shares[w, g]) for w, g in variants if w is not None
        }
    info = run_info(command)
    payload = {
        "settings": vars(args),
        "instructions": INSTRUCTIONS,
        "users": users,
        **summary,
        "example": example,
        "run": info,
    }
    lines = [f"# Instruction following on ml-100k ({args.users} users)", ""]
    lines += provenance_lines(info)
    model = f"adapters {args.checkpoint}" if args.checkpoint else "zero-shot SmolLM2-135M"
    described = (
        f"Model: {model}; candidates: {args.candidates} random unseen items per user "
        f"(seed {args.seed}); top {args.top_k}."
    )
    if fused:
        described += (
            f" Fused with {summary['fusion_model']} at its fitted weight "
            f"{summary['fusion_weight']:g} (the served model), and re-ranked from the same scores "
            "at each other weight (0: the LLM alone)."
        )
    described += (
        " Guidance g ranks by z(score) + g * z(LLM with the instruction - LLM without it), from "
        f"the same scores (served: {rec.instruction_guidance:g})."
    )
    lines += [
        described,
        "",
        "| fusion weight | guidance | instruction | "
        + " | ".join(f"{g} share in top {args.top_k}" for g in wanted)
        + " |",
        "|---|---|---|" + "---|" * len(wanted),
        "| | | (the pool itself) | "
        + " | ".join(f"{summary['share_in_pool'][g]:.3f}" for g in wanted)
        + " |",
    ]
    for variant in variants:
        weight, guidance = variant
        weight_label = (
            "-" if not fused else f"{rec.model.fusion_weight if weight is None else weight:g}"
        )
        guidance_label = f"{rec.instruction_guidance if guidance is None else guidance:g}"
        for c in conditions:
            cells = " | ".join(f"{np.mean(shares[variant][str(c)][g]):.3f}" for g in wanted)
            lines.append(f"| {weight_label} | {guidance_label} | {c or '(none)'} | {cells} |")
    lines += [
        "",
        "Latency is one scoring pass; a guided request (guidance > 0, with an instruction) "
        "makes two.",
        "",
        "| request | requests | p50 s | p95 s |",
        "|---|---|---|---|",
    ]
    for name, stats in list(summary["latency"].items()) + [
        (
            f"whole catalogue ({summary['latency_whole_catalogue']['candidates']} items)",
            summary["latency_whole_catalogue"],
        )
    ]:
        lines.append(f"| {name} | {stats['requests']} | {stats['p50_s']} | {stats['p95_s']} |")
    if example:
        lines += ["", f"## Example: user {example['user']}", ""]
        for c, rows in example["lists"].items():
            lines += [f"Instruction: {c if c != 'None' else '(none)'}", ""]
            lines += ["| rank | title | genres |", "|---|---|---|"]
            lines += [f"| {r['rank']} | {r['title']} | {r['genres']} |" for r in rows]
            lines.append("")
    save_report(args.out, args.tag, payload, lines)


if __name__ == "__main__":
    main()
