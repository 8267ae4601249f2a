"""What an epoch of a RecBole baseline costs on this machine, and which settings move it.

Trains a few batches of SASRec (or another RecBole sequential model) on ml-100k with the
benchmark's baseline settings plus each variant given, and reports training prefixes per
second, the projected epoch time and, for the first variant, the operators that take the time
(torch's profiler over one batch of the first variant).

    python benchmarks/baseline_epoch_cost.py --model SASRec \
        --variant '{}' --variant '{MAX_ITEM_LIST_LENGTH: 50}' --variant '{hidden_act: relu}'
"""

import argparse
import os
import sys
import time

import torch
import yaml

import recbole_instructrec  # noqa: E402,F401  (registers the plugin and its shims)
from recbole_instructrec.bench import runner  # noqa: E402
from recbole_instructrec.bench.report import provenance_lines, run_info, save_report  # noqa: E402


def measure(model_name, dataset, variant, batches, data_path, cache, profile=False):
    # detect_anomaly: true measures RecBole's import-time default, which the plugin turns off.
    variant = dict(variant)
    anomaly = bool(variant.pop("detect_anomaly", False))
    with torch.autograd.set_detect_anomaly(anomaly):
        row = _measure(model_name, dataset, variant, batches, data_path, cache, profile)
    return {**row, "detect_anomaly": anomaly}


def _measure(model_name, dataset, variant, batches, data_path, cache, profile):
    from recbole.utils import get_model

    settings = runner._common_settings(data_path, "uni9", 2020, cache, {})
    settings.update({**runner.BASELINE_SETTINGS, **variant})
    config, (train, _, _), _, _ = runner._prepare(model_name, dataset, settings)
    model = get_model(model_name)(config, train._dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    batch_iter, rows, seconds = iter(train), 0, 0.0
    for step in range(batches + 1):  # the first batch warms up and is not timed
        interaction = next(batch_iter)
        start = time.perf_counter()
        loss = model.calculate_loss(interaction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            seconds += time.perf_counter() - start
            rows += len(interaction)
    ops = None
    if profile:
        with torch.profiler.profile() as prof:
            model.calculate_loss(next(batch_iter)).backward()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        ops = [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3)} for e in events[:8]]
    per_second = rows / seconds
    return {
        "variant": variant,
        "max_item_list_length": int(config["MAX_ITEM_LIST_LENGTH"]),
        "train_batch_size": int(config["train_batch_size"]),
        "prefixes_per_second": round(per_second, 1),
        "training_prefixes": len(train.dataset),
        "projected_epoch_seconds": round(len(train.dataset) / per_second, 1),
        "top_operators": ops,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default="dataset")
    parser.add_argument("--variant", action="append", default=None, help="YAML settings")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--tag", default="baseline_epoch_cost")
    parser.add_argument("--out", default="benchmarks/experiments/baselines/results")
    args = parser.parse_args(argv)
    cache = os.path.join(args.out, "tmp")
    variants = [yaml.safe_load(v) or {} for v in (args.variant or ["{}"])]
    rows = [
        measure(args.model, args.dataset, v, args.batches, args.data_path, cache, profile=i == 0)
        for i, v in enumerate(variants)
    ]
    info = run_info("python benchmarks/baseline_epoch_cost.py " + " ".join(sys.argv[1:]))
    lines = provenance_lines(info) + [
        f"{args.model} on {args.dataset}, benchmark baseline settings plus each variant; "
        f"{args.batches} timed batches each.",
        "",
        "| variant | autograd anomaly mode | max length | batch | prefixes/s | projected epoch s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['variant'] or 'baseline settings'}` | {'on' if r['detect_anomaly'] else 'off'} | "
            f"{r['max_item_list_length']} | "
            f"{r['train_batch_size']} | {r['prefixes_per_second']:.0f} | "
            f"{r['projected_epoch_seconds']:.0f} |"
        )
    profiled = next((r for r in rows if r["top_operators"]), None)
    if profiled:
        lines += [
            "",
            f"Where one batch's time goes (`{profiled['variant'] or 'baseline settings'}`, "
            "self CPU time):",
            "",
        ]
        lines += [f"- `{o['op']}`: {o['share']:.0%}" for o in profiled["top_operators"]]
    save_report(args.out, args.tag, {"run": info, "model": args.model, "rows": rows}, lines)


if __name__ == "__main__":
    main()
