"""Full ranking on ml-100k, two-stage: SASRec proposes its top 20, the LLM re-ranks them.

    python benchmarks/two_stage_full.py [--max-users N] [--sasrec-epochs 10]

1. SASRec is trained by RecBole (``run_recbole``) under RecBole's ``full`` evaluation and its
   checkpoint saved. Its item vocabulary is InstructRec's: it loads the item file's ids (not
   its text), so internal ids agree.
2. InstructRec (zero-shot SmolLM2, ``candidate_model`` = that checkpoint) is evaluated by RecBole
   under ``full`` on the same split: every test user's whole catalogue is ranked, the LLM
   re-orders SASRec's top ``rerank_top_k`` and the rest keep SASRec's order.
Both rows: Hit/NDCG@1/5/10/20 over all items, and wall times.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FULL = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}
KS = [1, 5, 10, 20]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--sasrec-epochs", type=int, default=10)
    parser.add_argument("--rerank-top-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--tag", default=None)
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "collaborative-signal", "results"),
    )
    args = parser.parse_args()
    command = " ".join(["python"] + sys.argv)
    sys.argv = sys.argv[:1]

    import recbole_instructrec
    from recbole_instructrec.bench.report import run_info, save_report
    from recbole_instructrec.bench.runner import BASELINE_SETTINGS
    from recbole_instructrec.bench.user_sample import sample_users

    work = os.path.join(args.out, "tmp")
    dataset, data_path = "ml-100k", None
    if args.max_users:
        data_path, dataset = sample_users(None, "ml-100k", args.max_users, args.seed, work)
    common = {
        "eval_args": FULL,
        "metrics": ["Hit", "NDCG"],
        "topk": KS,
        "valid_metric": "NDCG@10",
        "seed": args.seed,
        "checkpoint_dir": os.path.join(work, "saved"),
        "show_progress": False,
        "log_wandb": False,
    }
    if data_path:
        common["data_path"] = data_path
    rows = {}

    start = time.time()
    sasrec_settings = {
        **common,
        **BASELINE_SETTINGS,
        "epochs": args.sasrec_epochs,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
    }
    sasrec = recbole_instructrec.run_recbole("SASRec", dataset, config_dict=sasrec_settings)
    rows["SASRec"] = dict(sasrec["test_result"], wall_s=round(time.time() - start, 1))
    saved = sorted(
        (os.path.join(common["checkpoint_dir"], f) for f in os.listdir(common["checkpoint_dir"])),
        key=os.path.getmtime,
    )
    checkpoint = next(p for p in reversed(saved) if os.path.basename(p).startswith("SASRec-"))

    start = time.time()
    two_stage = recbole_instructrec.run_recbole(
        "InstructRec",
        dataset,
        config_dict=dict(
            common,
            epochs=0,
            lora_r=0,
            candidate_model=checkpoint,
            rerank_top_k=args.rerank_top_k,
            eval_batch_size=4096,
        ),
    )
    name = f"SASRec top-{args.rerank_top_k} -> InstructRec zero-shot"
    rows[name] = dict(two_stage["test_result"], wall_s=round(time.time() - start, 1))

    info = run_info(command)
    tag = args.tag or f"two-stage-full-{dataset}"
    save_report(args.out, tag, {"dataset": dataset, "rows": rows, "run": info}, _lines(rows, info))


def _lines(rows, info):
    from recbole_instructrec.bench.report import provenance_lines

    header = [f"hit@{k}" for k in KS] + [f"ndcg@{k}" for k in KS]
    lines = ["# Full ranking, two-stage", ""] + provenance_lines(info)
    lines += [
        "| model | " + " | ".join(header) + " | wall s |",
        "|---|" + "---|" * (len(KS) * 2 + 1),
    ]
    for name, result in rows.items():
        cells = " | ".join(f"{result[h]:.4f}" for h in header)
        lines.append(f"| {name} | {cells} | {result['wall_s']} |")
    return lines


if __name__ == "__main__":
    main()
