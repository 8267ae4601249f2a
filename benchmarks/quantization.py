"""Does int8 dynamic quantization (or bf16) of the linear layers speed up CPU evaluation without
changing the rankings? Zero-shot SmolLM2 on the same ml-100k test users and candidates.

    python benchmarks/quantization.py [--users 100] [--out benchmarks/experiments/scoring-speed/results]

Reports, per precision: seconds per user, HR@1 and NDCG@5, and agreement of the top-1 item
with fp32. A setting would ship only if its rankings stayed within a stated tolerance of fp32.
"""

import argparse
import copy
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "experiments", "scoring-speed", "results")
    )
    args = parser.parse_args()
    sys.argv = sys.argv[:1]

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    import recbole_instructrec  # noqa: F401
    from recbole_instructrec import InstructRec
    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report
    from recbole_instructrec.scoring.ranking import positive_ranks, ranking_metrics

    config = Config(
        model="InstructRec", dataset="ml-100k", config_dict={"lora_r": 0, "state": "ERROR"}
    )
    init_seed(config["seed"], True)
    train, _, test = data_preparation(config, create_dataset(config))
    model = InstructRec(config, train._dataset).eval()
    fp32 = model._inference_scorer()
    variants = {
        "fp32": fp32,
        "int8-dynamic": model._scorer_for(
            torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model.llm), {torch.nn.Linear}, dtype=torch.qint8
            ).eval()
        ),
        "bf16": model._scorer_for(copy.deepcopy(model.llm).to(torch.bfloat16).eval()),
    }
    batches, seen = [], 0
    for batch in test:
        batches.append(batch[0])
        seen += len(batch[0]) // 10
        if seen >= args.users:
            break
    scores, seconds = {}, {}
    with torch.no_grad():
        for name, scorer in variants.items():
            model._eval_scorer = scorer
            start = time.perf_counter()
            scores[name] = torch.cat([model.predict(b).view(-1, 10) for b in batches]).float()
            seconds[name] = time.perf_counter() - start
    users = len(scores["fp32"])
    top1 = scores["fp32"].argmax(1)
    rows = []
    for name in variants:
        metrics = ranking_metrics(positive_ranks(scores[name].numpy()), [1, 5])
        rows.append(
            {
                "precision": name,
                "seconds_per_user": seconds[name] / users,
                "hit@1": metrics["hit@1"],
                "ndcg@5": metrics["ndcg@5"],
                "top1_agreement_with_fp32": float((scores[name].argmax(1) == top1).float().mean()),
            }
        )
    info = run_info("python benchmarks/quantization.py --users " + str(args.users))
    lines = provenance_lines(
        info, f"; zero-shot SmolLM2-135M, {users} ml-100k test users, uni9 (RecBole's seeded draw)"
    ) + [
        "| precision | s/user | HR@1 | NDCG@5 | top-1 agreement with fp32 |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['precision']} | {r['seconds_per_user']:.3f} | {r['hit@1']:.4f} | "
            f"{r['ndcg@5']:.4f} | {r['top1_agreement_with_fp32']:.2f} |"
        )
    save_report(args.out, "quantization", {"run": info, "users": users, "results": rows}, lines)


if __name__ == "__main__":
    main()
