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
    import recbole_instructrec

    args = recbole_arguments(argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
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
