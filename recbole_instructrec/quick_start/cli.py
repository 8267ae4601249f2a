"""Console scripts: ``run_recbole`` (RecBole's own flags, any RecBole model) and ``instructrec``."""

import argparse


def recbole_arguments(argv=None):
    """RecBole's run_recbole.py flags; ``--key=value`` overrides are read by Config itself."""
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description="Train and test any RecBole model, InstructRec included. "
        "Any other --key=value overrides a setting.",
    )
    parser.add_argument("--model", "-m", type=str, default="BPR", help="name of the model")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated files")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    parser.add_argument("--ip", type=str, default="localhost", help="master address")
    parser.add_argument("--port", type=str, default="5678", help="master port")
    parser.add_argument("--world_size", type=int, default=-1, help="processes in total")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this node")
    args, _ = parser.parse_known_args(argv)
    return args


def run_recbole_main(argv=None):
    import os

    import recbole_instructrec
    from recbole_instructrec.plugin import launched_by_torchrun

    args = recbole_arguments(argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    if launched_by_torchrun():
        # torchrun has started this worker already: join its group instead of spawning.
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        config_dict = {
            "local_rank": local_rank,
            "offset": rank - local_rank,
            "world_size": int(os.environ["WORLD_SIZE"]),
            "nproc": int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        }
        recbole_instructrec.run_recbole(
            args.model, args.dataset, config_file_list, config_dict=config_dict
        )
        return
    recbole_instructrec.run(
        args.model,
        args.dataset,
        config_file_list=config_file_list,
        nproc=args.nproc,
        world_size=args.world_size,
        ip=args.ip,
        port=args.port,
        group_offset=args.group_offset,
    )


if __name__ == "__main__":
    run_recbole_main()


def instructrec_main(argv=None):
    """``instructrec bench|compare|convert-amazon|recommend|serve ...``: see
    ``instructrec <command> --help``."""
    import sys

    parser = argparse.ArgumentParser(prog="instructrec")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="side-by-side benchmark on identical candidates")
    bench.add_argument("--datasets", default="ml-100k", help="comma-separated dataset names")
    bench.add_argument(
        "--models",
        default="SASRec,SASRec-tuned,BERT4Rec,InstructRec-zeroshot,InstructRec-LoRA",
        help="comma-separated RecBole model names, SASRec-tuned, InstructRec variants, or "
        "PopularityRule (candidates by training interactions)",
    )
    bench.add_argument("--protocol", default="uni9", help="uni9 (paper), uni99, pop99 or full")
    bench.add_argument("--max-users", type=int, default=None, help="deterministic user sample")
    bench.add_argument("--data-path", default=None, help="folder holding <dataset>/ atomic files")
    bench.add_argument(
        "--model-config",
        action="append",
        default=[],
        metavar="MODEL=FILE.yaml",
        help="YAML settings for one model (repeatable)",
    )
    bench.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for all models"
    )
    bench.add_argument(
        "--tasks",
        default="sequential",
        help="comma-separated instruction tasks, scored on the same candidates: sequential, "
        "psearch-specific, psearch-vague, psearch-vague-held-out, psearch-preference, "
        "product-search (each task writes its own results, with the category rule's row)",
    )
    bench.add_argument(
        "--stored-row",
        action="append",
        default=[],
        metavar="ROW=bench-*.json",
        help="take a row's scores from an earlier run on the same candidates (repeatable)",
    )
    bench.add_argument(
        "--trained-row",
        action="append",
        default=[],
        metavar="ROW=bench-*.json",
        help="evaluate a row from the checkpoint it saved in an earlier run, without training "
        "(e.g. under another --protocol; repeatable)",
    )
    bench.add_argument("--out", default="bench-results", help="output folder")
    bench.add_argument("--seed", type=int, default=2020)
    bench.add_argument("--tag", default=None, help="name of the result files (default: time)")
    compare = commands.add_parser(
        "compare",
        help="rows of benchmark runs, paired over users on the same stored candidates",
    )
    compare.add_argument(
        "--results", action="append", required=True, metavar="bench-*.json", help="(repeatable)"
    )
    compare.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    compare.add_argument("--title", default="", help="chart title, e.g. the dataset")
    compare.add_argument(
        "--reference", default=None, help="set every row against this row (of --rows) only"
    )
    compare.add_argument("--out", default="bench-results", help="output folder")
    compare.add_argument("--tag", required=True, help="name of the result files")
    convert = commands.add_parser(
        "convert-amazon", help="Amazon Review Data 2018 files -> RecBole atomic files with titles"
    )
    convert.add_argument("--reviews", required=True, help="e.g. Video_Games_5.json.gz")
    convert.add_argument("--meta", required=True, help="e.g. meta_Video_Games.json.gz")
    convert.add_argument("--name", required=True, help="dataset name, e.g. amazon-games")
    convert.add_argument("--out", default="dataset", help="data_path to write <name>/ into")
    convert.add_argument("--k-core", type=int, default=5)
    ask = commands.add_parser("recommend", help="recommendations for a user and an instruction")
    ask.add_argument("--dataset", default="ml-100k")
    ask.add_argument("--checkpoint", default=None, help="adapter checkpoint (none: zero-shot)")
    who = ask.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", default=None, help="a user id of the dataset")
    who.add_argument("--history", action="append", help="a title of the history (repeatable)")
    ask.add_argument("--instruction", default=None, help='e.g. "a comedy from the 90s"')
    ask.add_argument("--top-k", type=int, default=10)
    ask.add_argument(
        "--candidate-model", default=None, help="retriever checkpoint: re-rank its top-N"
    )
    ask.add_argument("--top-n", type=int, default=50, help="retriever candidates to re-rank")
    ask.add_argument("--include-history", action="store_true", help="allow already-seen items")
    ask.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ask.add_argument("--json", action="store_true", help="print JSON instead of a table")
    serve = commands.add_parser(
        "serve", help="recommendations over HTTP (POST /recommend), a page to try them at /"
    )
    serve.add_argument(
        "--dataset", default=None, help="default: the checkpoint's dataset, else ml-100k"
    )
    serve.add_argument("--checkpoint", default=None, help="adapter checkpoint (none: zero-shot)")
    serve.add_argument(
        "--candidate-model", default=None, help="retriever checkpoint: re-rank its top-N"
    )
    serve.add_argument("--top-n", type=int, default=50, help="retriever candidates to re-rank")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-batch", type=int, default=16, help="requests scored together in one pass"
    )
    serve.add_argument(
        "--max-queue", type=int, default=64, help="waiting requests before 503 + Retry-After"
    )
    serve.add_argument("--log-level", default="info", help="uvicorn's log level")
    serve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
        return
    if args.command == "recommend":
        _recommend(args)
        return
    if args.command == "compare":
        _compare(args, argv)
        return
    if args.command == "convert-amazon":
        from recbole_instructrec.data.amazon2018 import convert as convert_amazon

        users, items, inters = convert_amazon(
            args.reviews, args.meta, args.out, args.name, args.k_core
        )
        print(f"{args.out}/{args.name}: {users} users, {items} items, {inters} interactions")
        return

    # RecBole's Config reads sys.argv for --key=value overrides; ours are not its settings.
    sys.argv = sys.argv[:1]
    if args.command == "bench":
        import recbole_instructrec  # noqa: F401
        from recbole_instructrec.bench import run_benchmark
        from recbole_instructrec.bench.instruction_tasks import parse_tasks

        run_benchmark(
            tasks=parse_tasks(args.tasks),
            stored_rows=row_files(args.stored_row, "--stored-row"),
            trained_rows=row_files(args.trained_row, "--trained-row"),
            datasets=[d for d in args.datasets.split(",") if d],
            models=[m for m in args.models.split(",") if m],
            protocol=args.protocol,
            max_users=args.max_users,
            data_path=args.data_path,
            model_settings=model_settings(args.model_config),
            common_settings=key_values(args.set),
            out_dir=args.out,
            seed=args.seed,
            tag=args.tag,
            command="instructrec " + " ".join(argv),
        )


def _compare(args, argv):
    import os

    from recbole_instructrec.bench import charts, comparison
    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    names = [n for n in (args.rows or "").split(",") if n] or None
    try:
        rows = comparison.load_rows(args.results, names)
        reference = None
        if args.reference and names and args.reference not in names:
            raise comparison.ComparisonError(
                f"--reference {args.reference!r} is not one of --rows {names}; name one of them"
            )
        if args.reference:
            reference = rows[names.index(args.reference)]["model"] if names else args.reference
        result = comparison.compare_rows(rows, reference=reference)
    except comparison.ComparisonError as error:
        raise SystemExit(f"instructrec compare: {error}") from None
    info = run_info("instructrec " + " ".join(argv))
    sources = [
        {"model": r["model"], "result_file": r["result_file"], "commit": r["run"]["commit"]}
        for r in rows
    ]
    lines = provenance_lines(info) + [
        f"{args.title or 'Comparison'}: {result['n_users']} test users, the same stored "
        f"candidates in every row (sha256 {rows[0].get('candidates_sha256', '')[:12]}).",
        *comparison.markdown_lines(result),
        "",
        "Where each row comes from (its benchmark file and the commit that ran it):",
        "",
        *[f"- {s['model']}: `{s['result_file']}`, commit `{s['commit'][:10]}`" for s in sources],
    ]
    save_report(args.out, args.tag, {"run": info, "sources": sources, **result}, lines)
    charts.comparison_chart(result, os.path.join(args.out, f"{args.tag}.png"), args.title)


def _recommend(args):
    import json
    import sys
    from dataclasses import asdict

    sys.argv = sys.argv[:1]
    import recbole_instructrec  # noqa: F401
    from recbole_instructrec.quick_start.recommend import Recommender, format_table

    settings = key_values(args.set)
    if args.candidate_model:
        settings.update(candidate_model=args.candidate_model, rerank_top_k=args.top_n)
    recommender = Recommender(args.dataset, args.checkpoint, settings)
    result = recommender.recommend(
        user=args.user,
        history_titles=args.history,
        instruction=args.instruction,
        top_k=args.top_k,
        include_history=args.include_history,
    )
    print(json.dumps(asdict(result), indent=2) if args.json else format_table(result))


def _serve(args):
    import sys

    sys.argv = sys.argv[:1]
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            f"instructrec serve needs FastAPI and uvicorn ({error}): "
            "pip install 'recbole-instructrec[serve]'"
        ) from None
    import recbole_instructrec  # noqa: F401
    from recbole_instructrec.quick_start.serve import serve_main

    serve_main(args, key_values(args.set))


def _split(entry, flag, form):
    if "=" not in entry:
        raise SystemExit(f"{flag} {entry!r}: expected {form}")
    return entry.split("=", 1)


def key_values(pairs):
    """`--set KEY=VALUE` pairs as settings, each value read as YAML (`3`: a number, `~`: None)."""
    import yaml

    return {
        key: yaml.safe_load(value)
        for key, value in (_split(p, "--set", "KEY=VALUE") for p in pairs)
    }


def row_files(entries, option):
    """``option`` (`--stored-row` or `--trained-row`) ``ROW=bench-*.json`` entries as
    {row: result file}."""
    return dict(_split(e, option, "ROW=bench-*.json") for e in entries)


def model_settings(entries):
    """`--model-config MODEL=FILE.yaml` entries as {row: settings}."""
    import yaml

    settings = {}
    for model, path in (_split(e, "--model-config", "MODEL=FILE.yaml") for e in entries):
        with open(path, encoding="utf-8") as f:
            settings[model] = yaml.safe_load(f) or {}
    return settings
