"""Load on `instructrec serve`: latency and throughput at 1, 4 and 16 concurrent clients, with
the retriever's top 100 re-ranked (two-stage) and with the whole catalogue, and the speed-up of
batching over serving requests one by one.

    python benchmarks/serve_load.py [--dataset ml-100k] [--candidate-model <SASRec .pth>]
        [--settings two-stage,full] [--concurrency 1,4,16] [--one-by-one 16]
        [--max-requests 48] [--max-seconds 600] [--tag serve_load]

For each setting a server (this checkout's code, `instructrec serve`) starts as its own process
on 127.0.0.1 and loads the model once; one request warms it up (not counted). Then, for each
concurrency c, c clients each send a request, wait for its answer and send the next (closed
loop), over one shared, seeded list of requests: users of the dataset, half of them with an
instruction. A cell stops issuing after ``--max-requests`` requests or ``--max-seconds``,
whichever comes first, and waits for the requests in flight (each at most
``--request-timeout``).

"One by one" restarts the server with ``--max-batch 1`` (every request its own scoring pass)
and repeats the cells of ``--one-by-one``; the speed-up is the batched throughput over that,
at the same concurrency and on the same requests.

Per cell: p50/p95/p99 latency of the answered requests, throughput (answers per second of the
cell's wall time), mean batch size (as the responses report it), errors (HTTP status other
than 200, by status; 503 is the queue refusing) and lost requests (no HTTP answer at all:
connection failure or timeout). The target for both is none.

Without ``--candidate-model`` the two-stage setting first trains SASRec with RecBole
(``--sasrec-epochs``, the benchmark's baseline settings), as benchmarks/two_stage_full.py does.
JSON and Markdown go to ``--out`` (default benchmarks/experiments/serving-under-load/results); server logs to its tmp/.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INSTRUCTIONS = [
    "something scary for tonight",
    "a comedy to laugh at",
    "an old classic",
    "a romantic film for two",
]
# `instructrec serve` from this checkout (the console script may belong to another install)
SERVE = (
    "import sys; sys.argv[0] = 'instructrec'; "
    "from recbole_instructrec.quick_start.cli import instructrec_main; instructrec_main()"
)


def _ints(text):
    return [int(x) for x in str(text).split(",") if x.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--checkpoint", default=None, help="adapter checkpoint (none: zero-shot)")
    parser.add_argument("--candidate-model", default=None, help="retriever .pth (two-stage)")
    parser.add_argument("--sasrec-epochs", type=int, default=10, help="when none is given")
    parser.add_argument("--top-n", type=int, default=100, help="retriever candidates re-ranked")
    parser.add_argument("--settings", default="two-stage,full", help="two-stage and/or full")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrent clients per cell")
    parser.add_argument(
        "--one-by-one", default="16", help="concurrencies to repeat with --max-batch 1 ('' none)"
    )
    parser.add_argument("--max-batch", type=int, default=16, help="the batched server's")
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--max-requests", type=int, default=48, help="per cell")
    parser.add_argument("--max-seconds", type=float, default=600, help="per cell, to issue")
    parser.add_argument("--request-timeout", type=float, default=1800)
    parser.add_argument("--start-timeout", type=float, default=900)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--server-threads", type=int, default=None, help="OMP_NUM_THREADS of the server"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a server setting"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--tag", default="serve_load")
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "serving-under-load", "results"),
    )
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/serve_load.py"] + list(argv or sys.argv[1:]))

    import logging

    import httpx

    from recbole_instructrec.bench.report import run_info, save_report

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    settings = [s for s in args.settings.split(",") if s]
    unknown = set(settings) - {"two-stage", "full"}
    if unknown:
        raise SystemExit(f"--settings: unknown {sorted(unknown)}; give two-stage and/or full")
    work = os.path.join(args.out, "tmp")
    os.makedirs(work, exist_ok=True)
    if "two-stage" in settings and not args.candidate_model:
        args.candidate_model = _train_sasrec(args, work)

    cells, servers = [], {}
    for setting in settings:
        extra = ["--candidate-model", args.candidate_model, "--top-n", str(args.top_n)]
        extra = extra if setting == "two-stage" else []
        modes = [("batched", args.max_batch, _ints(args.concurrency))]
        if _ints(args.one_by_one):
            modes.append(("one by one", 1, _ints(args.one_by_one)))
        for mode, max_batch, concurrencies in modes:
            log = os.path.join(work, f"{args.tag}-{setting}-{mode.replace(' ', '-')}.log")
            with Server(args, extra, max_batch, log) as server:
                servers[f"{setting}, {mode}"] = {"command": server.command, "log": log}
                client = httpx.Client(base_url=server.url, timeout=args.request_timeout)
                info = client.get("/info").json()
                requests = _requests(client, args, info)
                warm = client.post("/recommend", json=requests[-1])
                if warm.status_code != 200:
                    raise SystemExit(f"warm-up request failed: {warm.status_code} {warm.text}")
                servers[f"{setting}, {mode}"]["info"] = info
                for concurrency in concurrencies:
                    cell = _run_cell(server.url, requests, concurrency, args)
                    cell.update(setting=setting, mode=mode, max_batch=max_batch)
                    cell["candidates"] = info["rerank_top_k"] or info["n_items"]
                    cells.append(cell)
                    print(f"[serve_load] {_describe(cell)}", flush=True)
                cell_health = client.get("/health").json()
                servers[f"{setting}, {mode}"]["health_after"] = cell_health
                client.close()

    speedups = _speedups(cells)
    info = run_info(command)
    info["machine"]["server_threads"] = args.server_threads or os.environ.get("OMP_NUM_THREADS")
    payload = {
        "settings": vars(args),
        "instructions": INSTRUCTIONS,
        "servers": servers,
        "cells": cells,
        "speedup_over_one_by_one": speedups,
        "run": info,
    }
    save_report(args.out, args.tag, payload, _lines(args, info, cells, speedups))


class Server:
    """``instructrec serve`` of this checkout on a free port of 127.0.0.1, as its own process."""

    def __init__(self, args, extra, max_batch, log):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.command = [sys.executable, "-c", SERVE, "serve", "--dataset", args.dataset]
        if args.checkpoint:
            self.command += ["--checkpoint", args.checkpoint]
        self.command += extra + ["--port", str(port), "--log-level", "warning"]
        self.command += ["--max-batch", str(max_batch), "--max-queue", str(args.max_queue)]
        for pair in args.set:
            self.command += ["--set", pair]
        self.log, self.timeout = log, args.start_timeout
        self.env = dict(os.environ)
        if args.server_threads:
            self.env["OMP_NUM_THREADS"] = str(args.server_threads)

    def __enter__(self):
        import httpx

        print(f"[serve_load] starting: {' '.join(self.command[3:])}", flush=True)
        self._log = open(self.log, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                self._log.close()
                with open(self.log, encoding="utf-8") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"the server exited ({self.process.returncode}):\n{tail}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"the server did not answer /health in {self.timeout} s")
            time.sleep(0.5)

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _requests(client, args, info):
    """The cells' requests: seeded users of the dataset, every other one with an instruction."""
    users = client.get("/users", params={"limit": 5000}).json()["users"]
    rng = random.Random(args.seed)
    picked = [u["user"] for u in rng.sample(users, min(len(users), 400))]
    requests = []
    for n, user in enumerate(picked):
        request = {"user": user, "top_k": min(args.top_k, info["n_items"])}
        if n % 2:
            request["instruction"] = INSTRUCTIONS[(n // 2) % len(INSTRUCTIONS)]
        requests.append(request)
    return requests


def _run_cell(url, requests, concurrency, args):
    import httpx

    lock = threading.Lock()
    issued = [0]
    records = []
    start = time.monotonic()
    deadline = start + args.max_seconds

    def next_request():
        with lock:
            if issued[0] >= args.max_requests or time.monotonic() > deadline:
                return None
            issued[0] += 1
            return requests[(issued[0] - 1) % len(requests)]

    def client_loop():
        with httpx.Client(base_url=url, timeout=args.request_timeout) as client:
            while (request := next_request()) is not None:
                sent = time.monotonic()
                record = {"status": None, "lost": None, "batch_size": None}
                try:
                    response = client.post("/recommend", json=request)
                    record["status"] = response.status_code
                    if response.status_code == 200:
                        record["batch_size"] = response.json()["timing"]["batch_size"]
                except httpx.HTTPError as error:  # no HTTP answer: lost
                    record["lost"] = f"{type(error).__name__}: {error}"[:200]
                record["latency_s"] = time.monotonic() - sent
                record["done"] = time.monotonic()
                with lock:
                    records.append(record)

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summary(records, concurrency, start)


def _percentile(values, q):
    import numpy as np

    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def _summary(records, concurrency, start):
    ok = [r for r in records if r["status"] == 200]
    latencies = [r["latency_s"] for r in ok]
    wall = (max(r["done"] for r in records) - start) if records else 0.0
    errors = {}
    for r in records:
        if r["status"] not in (None, 200):
            errors[str(r["status"])] = errors.get(str(r["status"]), 0) + 1
    lost = [r["lost"] for r in records if r["lost"]]
    sizes = [r["batch_size"] for r in ok]
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "answered": len(ok),
        "errors": errors,
        "error_count": sum(errors.values()),
        "lost": len(lost),
        "lost_examples": lost[:3],
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "mean_ms": round(1000 * sum(latencies) / len(latencies), 1) if latencies else None,
        "throughput_rps": round(len(ok) / wall, 4) if wall else None,
        "wall_s": round(wall, 2),
        "mean_batch_size": round(sum(sizes) / len(sizes), 2) if sizes else None,
        "max_batch_size": max(sizes) if sizes else None,
    }


def _speedups(cells):
    out = []
    for slow in (c for c in cells if c["mode"] == "one by one"):
        fast = next(
            (
                c
                for c in cells
                if c["mode"] == "batched"
                and c["setting"] == slow["setting"]
                and c["concurrency"] == slow["concurrency"]
            ),
            None,
        )
        if fast and fast["throughput_rps"] and slow["throughput_rps"]:
            out.append(
                {
                    "setting": slow["setting"],
                    "concurrency": slow["concurrency"],
                    "batched_rps": fast["throughput_rps"],
                    "one_by_one_rps": slow["throughput_rps"],
                    "speedup": round(fast["throughput_rps"] / slow["throughput_rps"], 2),
                    "p50_ms_batched": fast["p50_ms"],
                    "p50_ms_one_by_one": slow["p50_ms"],
                }
            )
    return out


def _describe(cell):
    return (
        f"{cell['setting']}, {cell['mode']}, {cell['concurrency']} clients: "
        f"{cell['answered']}/{cell['requests']} answered, p50 {cell['p50_ms']} ms, "
        f"p95 {cell['p95_ms']} ms, {cell['throughput_rps']} req/s, "
        f"mean batch {cell['mean_batch_size']}, errors {cell['errors'] or 0}, lost {cell['lost']}"
    )


def _train_sasrec(args, work):
    """A SASRec retriever for the two-stage setting, as benchmarks/two_stage_full.py trains it."""
    sys.argv = sys.argv[:1]
    import recbole_instructrec
    from recbole_instructrec.bench.runner import BASELINE_SETTINGS, INTERACTIONS_ONLY
    from recbole_instructrec.quick_start.cli import key_values

    saved = os.path.join(work, "saved")
    settings = {
        **BASELINE_SETTINGS,
        **INTERACTIONS_ONLY,
        "epochs": args.sasrec_epochs,
        "checkpoint_dir": saved,
        "show_progress": False,
        "log_wandb": False,
        "seed": args.seed,
    }
    data_path = key_values(args.set).get("data_path")
    if data_path:
        settings["data_path"] = data_path
    before = set(os.listdir(saved)) if os.path.isdir(saved) else set()
    print(f"[serve_load] training SASRec on {args.dataset} for the two-stage setting", flush=True)
    recbole_instructrec.run_recbole("SASRec", args.dataset, config_dict=settings)
    new = sorted(f for f in set(os.listdir(saved)) - before if f.startswith("SASRec-"))
    return os.path.join(saved, new[-1])


def _lines(args, info, cells, speedups):
    from recbole_instructrec.bench.report import provenance_lines

    lines = [f"# `instructrec serve` under load ({args.dataset})", ""]
    lines += provenance_lines(info)
    model = f"adapters {args.checkpoint}" if args.checkpoint else "zero-shot (embedded LLM)"
    lines += [
        f"Model: {model}. Requests: users of the dataset (seed {args.seed}), every other one "
        f"with an instruction, top {args.top_k}. Each client sends its next request when the "
        f"last is answered. A cell stops issuing after {args.max_requests} requests or "
        f"{args.max_seconds:g} s. Batched server: --max-batch {args.max_batch} --max-queue "
        f"{args.max_queue}; one by one: --max-batch 1. Two-stage: the retriever's top "
        f"{args.top_n} ({args.candidate_model}); full: the whole catalogue.",
        "",
        "| setting | server | clients | candidates | answered / sent | p50 ms | p95 ms | "
        "p99 ms | req/s | mean batch | errors | lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        errors = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "0"
        lines.append(
            f"| {c['setting']} | {c['mode']} | {c['concurrency']} | {c['candidates']} | "
            f"{c['answered']} / {c['requests']} | {c['p50_ms']} | {c['p95_ms']} | "
            f"{c['p99_ms']} | {c['throughput_rps']} | {c['mean_batch_size']} | {errors} | "
            f"{c['lost']} |"
        )
    if speedups:
        lines += ["", "Batching against one by one (same requests, same concurrency):", ""]
        lines += [
            f"- {s['setting']}, {s['concurrency']} clients: {s['batched_rps']} against "
            f"{s['one_by_one_rps']} req/s, **{s['speedup']}x**; p50 {s['p50_ms_batched']} "
            f"against {s['p50_ms_one_by_one']} ms"
            for s in speedups
        ]
    total_errors = sum(c["error_count"] for c in cells)
    total_lost = sum(c["lost"] for c in cells)
    lines += ["", f"Errors in all cells: {total_errors}; lost requests: {total_lost}."]
    return lines


if __name__ == "__main__":
    main()
