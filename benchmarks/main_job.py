"""The README's main job, timed on this machine: InstructRec on ml-100k with the embedded defaults.

    python benchmarks/main_job.py [--tag main_job] [--keep-saved DIR] [--key=value ...]
    python benchmarks/main_job.py --log FILE --commit SHA   # record a run of the command made
                                                           # by hand, with `time` at its end

Runs ``run_recbole --model=InstructRec --dataset=ml-100k`` (the console script next to this
Python; any ``--key=value`` given here is passed on, and recorded in the command) in a fresh
empty folder, as a new user would, and records the wall time, the training
signals the trainer logged and RecBole's validation and test results. RecBole draws the test
negatives itself (uni9), so its test metrics are not on the benchmark's stored candidates; the
bench row with the same settings is (``benchmarks/experiments/training-objectives/configs/fast-running-list.yaml``).
"""

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMAND = ["run_recbole", "--model=InstructRec", "--dataset=ml-100k"]


def job_command(settings):
    """The main job's command with ``--key=value`` settings appended (RecBole's command-line
    form); anything else is refused by name."""
    unknown = [arg for arg in settings if not re.fullmatch(r"--\w+=.*", arg)]
    if unknown:
        raise ValueError(f"{' '.join(unknown)}: pass each setting of the job as --key=value")
    return [*COMMAND, *settings]


def parse_log(text):
    """Training signals, validation and test metrics, and (if ``time`` printed it) the wall
    seconds, from the output of the main job."""
    signals = re.findall(r"training signals \((\d+) in all", text)
    results = {}
    for name in ("best valid", "test result"):
        found = re.findall(name + r"\s*: OrderedDict\((\[.*?\])\)", text)
        if found:
            pairs = ast.literal_eval(re.sub(r"np\.float64\(([^)]*)\)", r"\1", found[-1]))
            results[name.replace(" ", "_")] = dict(pairs)
    wall = re.findall(r"real\s+(\d+)m([\d.]+)s", text)
    return {
        "training_signals": int(signals[-1]) if signals else None,
        "wall_seconds": int(wall[-1][0]) * 60 + float(wall[-1][1]) if wall else None,
        **results,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", default=os.path.join(ROOT, "benchmarks", "experiments", "main-job", "results")
    )
    parser.add_argument("--tag", default="main_job")
    parser.add_argument("--log", default=None, help="a finished run's output, to record")
    parser.add_argument("--commit", default=None, help="the commit --log was run at")
    parser.add_argument(
        "--keep-saved", default=None, help="copy the run's saved/ checkpoints into this folder"
    )
    args, settings = parser.parse_known_args()
    if settings and args.log:
        parser.error("--key=value settings run a job; --log records a job already run")
    try:
        command = job_command(settings)
    except ValueError as error:
        parser.error(str(error))
    if bool(args.log) != bool(args.commit):
        parser.error("--log and --commit go together: the log of a run and the commit it ran at")

    from recbole_instructrec.bench.report import provenance_lines, run_info, save_report

    if args.log:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            record = parse_log(f.read())
        info = run_info(" ".join(COMMAND))
        info.update(commit=args.commit, uncommitted_changes=False, recorded_from_log=args.log)
    else:
        script = os.path.join(os.path.dirname(sys.executable), COMMAND[0])
        with tempfile.TemporaryDirectory(prefix="main-job-") as folder:
            start = time.perf_counter()
            done = subprocess.run(
                [script, *command[1:]], cwd=folder, capture_output=True, text=True
            )
            seconds = time.perf_counter() - start
            if args.keep_saved and os.path.isdir(os.path.join(folder, "saved")):
                shutil.copytree(os.path.join(folder, "saved"), args.keep_saved, dirs_exist_ok=True)
        if done.returncode:
            raise SystemExit(f"the main job failed:\n{done.stderr[-3000:]}")
        record = parse_log(done.stdout + done.stderr)
        record["wall_seconds"] = seconds
        info = run_info(" ".join(command))
    if record.get("wall_seconds") is None or "test_result" not in record:
        raise SystemExit("no wall time or test result in the output; was the run complete?")
    test = record["test_result"]
    lines = provenance_lines(info, "; the whole machine, nothing else running") + [
        "| wall min | training signals | test HR@1 | test NDCG@5 | valid NDCG@5 |",
        "|---|---|---|---|---|",
        f"| {record['wall_seconds'] / 60:.1f} | {record['training_signals']} | "
        f"{test['hit@1']:.4f} | {test['ndcg@5']:.4f} | "
        f"{record.get('best_valid', {}).get('ndcg@5', float('nan')):.4f} |",
    ]
    save_report(args.out, args.tag, {"run": info, "result": record}, lines)


if __name__ == "__main__":
    main()
