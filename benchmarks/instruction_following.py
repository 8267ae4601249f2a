"""Does a typed instruction move the recommendations the asked way, and what does it cost?
``instructrec recommend``'s engine (``Recommender``, its prompts and its scorer) on ml-100k.

    python benchmarks/instruction_following.py --checkpoint saved/InstructRec-....safetensors
        [--users N (default: every user)] [--candidates 100] [--guidance 1,3]
        [--set key=value]

Each user's last interaction is its real next item; the history is everything before it. The
pool is that item and ``--candidates`` - 1 seeded unseen items. For each of the genres in
``GENRES`` the user asks for that genre twice: with one of its trained phrasings (drawn per
user) and with its held-out phrasing (``vague_intentions.yaml``: training never draws it). The
pool is ranked without an instruction and with each; reported per genre and phrasing set
(``recbole_instructrec.bench.steering``):

* the asked genre's share of the top 10, with and without the instruction;
* the share of users whose asked-genre share rises;
* HR@10 of the real next item with and without the instruction (what steering costs).

``--guidance g`` also ranks by z(score) + g * z(score with the instruction - without it), from
the same scores. One packed scoring pass per user serves every condition. The LLM's own
ranking is measured: a fused model's fusion model reads no instruction and is left out.
"""

import argparse
import os
import sys

import numpy as np

# genres asked for: the six most frequent ml-100k genres in the users' test items and Horror,
# the genre of the "something scary"
GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=None, help="seeded sample (default: all)")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="adapter checkpoint (none: zero-shot)")
    parser.add_argument("--guidance", default="", help="guidance weights to rank with, e.g. 1,3")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a recommender setting"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--tag", default="instruction-following-ml-100k")
    parser.add_argument(
        "--out", default=os.path.join("benchmarks", "experiments", "instruction-tasks", "results")
    )
    args = parser.parse_args()
    command = " ".join(["python"] + sys.argv)
    sys.argv = sys.argv[:1]

    import torch

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report
    from recbole_instructrec.bench.steering import (
        BEYOND_THE_PAPER,
        property_share,
        release_year,
        summarise,
        top_k,
    )
    from recbole_instructrec.prompts.intentions import item_categories, stable_draw
    from recbole_instructrec.prompts.templates import get_template
    from recbole_instructrec.quick_start.cli import key_values
    from recbole_instructrec.quick_start.recommend import Recommender
    from recbole_instructrec.scoring.fusion import fuse

    # the commit and tree as the measurement starts: edits made during a long run are not in it
    info = run_info(command)
    rec = Recommender("ml-100k", checkpoint=args.checkpoint, config_dict=key_values(args.set))
    model = rec.model
    genres = item_categories(rec.config, rec.dataset)
    table = model.intentions.vague_table
    asked = []
    for genre in GENRES:
        phrasings = table[genre.lower()]
        asked += [(genre, "trained", phrasings.trained), (genre, "held out", phrasings.held_out)]
    # per asked condition, which items have what it asks for
    has = {genre: [genre in g for g in genres] for genre in GENRES}
    years = [release_year(text) for text in model.texts]
    for typed in BEYOND_THE_PAPER:
        asked.append((typed["property"], "beyond the paper", [typed["instruction"]]))
        has[typed["property"]] = [typed["has"](g, y) for g, y in zip(genres, years)]
    sequential = model.prompts
    requested = model._builder(get_template(model.templates, rec.instruction_template))
    guidance = [float(g) for g in args.guidance.split(",") if g.strip()]
    user_tokens = rec.dataset.field2id_token[rec.dataset.uid_field][1:].tolist()
    rng = np.random.RandomState(args.seed)
    users = sorted(user_tokens, key=int)
    if args.users:
        users = sorted(rng.choice(users, args.users, replace=False).tolist(), key=int)
    rows = {g: [] for g in [0.0, *guidance]}
    example = None
    for n, user in enumerate(users, 1):
        items = rec.user_history(user)
        history, target = items[:-1], items[-1]
        seen = set(items)
        unseen = [i for i in range(1, model.n_items) if i not in seen]
        pool = [target] + rng.choice(unseen, args.candidates - 1, replace=False).tolist()
        wishes = [
            phrasings[stable_draw(args.seed, user, genre) % len(phrasings)]
            for genre, _, phrasings in asked
        ]
        plans = [sequential.plan(history, pool)]
        plans += [requested.plan(history, pool, intention=w) for w in wishes]
        with torch.no_grad():
            scored = model._score_plans(plans, model._inference_scorer())
        plain = scored[0][0].float().cpu()
        before = top_k(pool, plain.numpy(), args.top_k)
        for (genre, phrasing_set, _), wish, (scores, _, _) in zip(asked, wishes, scored[1:]):
            scores = scores.float().cpu()
            for g in rows:
                ranked = scores if not g else fuse(scores, scores - plain, g)
                after = top_k(pool, ranked.numpy(), args.top_k)
                rows[g].append(
                    {
                        "user": user,
                        "category": genre,
                        "phrasings": phrasing_set,
                        "instruction": wish,
                        "share_before": property_share(before, has[genre]),
                        "share_after": property_share(after, has[genre]),
                        "hit_before": target in before,
                        "hit_after": target in after,
                    }
                )
            if example is None or example["user"] == user:
                example = example or {"user": user, "before": _titles(model, before, genres)}
                example[wish] = _titles(model, after, genres)
        print(f"[instruction-following] user {n}/{len(users)}", flush=True)

    summary = {str(g): summarise(r) for g, r in rows.items()}
    payload = {
        "settings": vars(args),
        "genres": GENRES,
        "instruction_template": rec.instruction_template,
        "users": users,
        "summary_by_guidance": summary,
        "rows": rows[0.0],
        "example": example,
        "run": info,
    }
    who = f"all {len(users)} users" if not args.users else f"a seeded sample of {len(users)} users"
    lines = [f"# Instruction following on ml-100k ({who})", ""]
    lines += provenance_lines(info)
    lines += [
        f"Model: {'adapters ' + args.checkpoint if args.checkpoint else 'zero-shot SmolLM2-135M'}; "
        f"template {rec.instruction_template}. Pool: the real next item and "
        f"{args.candidates - 1} seeded unseen items; top {args.top_k}.",
        "",
    ]
    for g, per_group in summary.items():
        lines += [
            f"## Guidance {g}" if float(g) else "## As ranked by the model (guidance 0)",
            "",
            "| asked for | phrasings | users | share before | share after | users whose share "
            f"rises | HR@{args.top_k} before | HR@{args.top_k} after |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['category']} | {s['phrasings']} | {s['users']} | {s['share_before']:.3f} | "
            f"{s['share_after']:.3f} | {s['users_whose_share_rises']:.3f} | "
            f"{s['hit_before']:.3f} | {s['hit_after']:.3f} |"
            for s in per_group
        ]
        lines.append("")
    if example:
        lines += [f"## Example: user {example['user']}", ""]
        for key, titles in example.items():
            if key != "user":
                lines += [f"- **{key}**: " + "; ".join(titles)]
    save_report(args.out, args.tag, payload, lines)


def _titles(model, items, genres):
    return [f"{model.titles[i]} [{'/'.join(genres[i])}]" for i in items]


if __name__ == "__main__":
    main()
