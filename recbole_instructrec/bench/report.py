"""Writing benchmark reports: JSON with everything, Markdown with the provenance on top, and
for a benchmark run its table, paired comparisons, cold-item slice and chart."""

import json
import os
import platform
import re
import subprocess
import sys
import time

import torch

from recbole_instructrec.bench import charts, comparison
from recbole_instructrec.bench.atomic import write_text_atomic

# Pathspecs from the top of the repository, so that a run of the installed copy (its files under
# .venv, which git ignores) still sees the checkout's changes.
WHOLE_REPOSITORY = (
    ":(top)",
    ":(top,exclude,glob)benchmarks/experiments/*/results/**",
)
HEADLINE = ["hit@1", "ndcg@5"]


def provenance_lines(info, extra=""):
    machine = info["machine"]
    changes = " (with uncommitted changes)" if info.get("uncommitted_changes") else ""
    if info.get("installed_package_differs"):
        changes += " (the installed package differs from the checkout)"
    return [
        f"Command: `{info['command']}`  ",
        f"Commit: `{info['commit']}`{changes}  ",
        f"Machine: {machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}, "
        f"GPU: {machine['gpu'] or 'none'}{extra}  ",
        f"Finished: {info['finished']}",
        "",
    ]


def save_report(out_dir, stem, payload, lines, quiet=False):
    """``stem``.json (``payload``) and ``stem``.md (``lines``) under ``out_dir``, every path in
    them written as :func:`portable` writes it."""
    places = _places()
    payload, lines = portable(payload, places), portable(list(lines), places)
    write_text_atomic(os.path.join(out_dir, f"{stem}.json"), json.dumps(payload, indent=2))
    text = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(out_dir, f"{stem}.md"), text)
    if not quiet:
        print(text)
    return text


def portable(value, places):
    """``value`` (any JSON value) with each absolute path of ``places`` ((folder, what it reads
    as), the innermost first) rewritten: a result names the repository's files relative to its
    root, so that it reads the same on any checkout and records nothing of the machine's
    folders. A folder is rewritten only where a path starts with it, never inside another path
    (``/tmp`` in ``/home/me/tmp/x``)."""
    if isinstance(value, str):
        for folder, name in places:
            start = r"(?<![\w./-])" + re.escape(folder)
            prefix, alone = (name + os.sep if name else ""), (name or ".")
            # replacements as functions: taken literally, never read as templates
            value = re.sub(start + re.escape(os.sep), lambda _, text=prefix: text, value)
            value = re.sub(start + r"(?![\w.-])", lambda _, text=alone: text, value)
        return value
    if isinstance(value, list):
        return [portable(v, places) for v in value]
    if isinstance(value, dict):
        return {k: portable(v, places) for k, v in value.items()}
    return value


def local_path(recorded):
    """The file a result's ``recorded`` path names on this machine: results record the
    repository's paths relative to its root (see :func:`portable`)."""
    if os.path.isabs(recorded):
        return recorded
    root = _git("rev-parse", "--show-toplevel") or os.getcwd()
    return os.path.normpath(os.path.join(root, recorded))


def _places():
    """The interpreter, its site-packages, the repository and the folder above it (where the
    shared datasets lie), as :func:`portable` rewrites them."""
    root = _git("rev-parse", "--show-toplevel") or os.getcwd()
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    places = [(sys.executable, "python")]
    if package_parent != root:  # an installed copy, not the checkout itself
        places.append((package_parent, "site-packages"))
    places += [(root, ""), (os.path.dirname(root), "..")]
    return [(folder, name) for folder, name in places if len(folder) > 1]


def installed_package_differs(root):
    """Whether the package this process imported differs from the checkout at ``root`` (a
    stale ``pip install .``): the commit a result records is then not the code that ran.
    False where the package is the checkout itself, or there is no checkout."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = os.path.join(root or "", "recbole_instructrec")
    if not root or not os.path.isdir(source) or os.path.samefile(package, source):
        return False
    # an installed copy keeps properties/ inside the package, a checkout beside it
    properties = os.path.join(package, "properties")
    if not os.path.isdir(properties):
        properties = os.path.join(package, "..", "properties")
    pairs = [(os.path.join(source, "..", "properties"), properties), (source, package)]
    for ours, theirs in pairs:
        for folder, dirs, files in os.walk(ours):
            dirs[:] = [
                d for d in dirs if d != "__pycache__" and not (ours == source and d == "properties")
            ]
            for name in files:
                path = os.path.join(folder, name)
                other = os.path.join(theirs, os.path.relpath(path, ours))
                if not os.path.isfile(other) or _read(path) != _read(other):
                    return True
    return False


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _git(*args):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_info(command):
    """Command, commit (and whether the tree was dirty) and machine of a measurement."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "command": command or " ".join(sys.argv),
        "commit": _git("rev-parse", "HEAD") or "unknown",
        # Result files a run rewrites (candidates, reports) are not changes to the measured code.
        "uncommitted_changes": bool(
            _git("status", "--porcelain", "--untracked-files=no", "--", *WHOLE_REPOSITORY)
        ),
        "installed_package_differs": installed_package_differs(
            _git("rev-parse", "--show-toplevel")
        ),
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_results(records, run_info, out_dir, stem, quiet=False):
    """A benchmark run's ``stem``.json, .md and .png under ``out_dir``."""
    paired = paired_comparisons(records)
    table = save_report(
        out_dir,
        stem,
        {"run": run_info, "results": records, "paired": paired},
        markdown_table(records, run_info, paired),
        quiet,
    )
    charts.benchmark_chart(_groups(records), paired, os.path.join(out_dir, f"{stem}.png"))
    return table


def _groups(records):
    groups = {}
    for r in records:
        groups.setdefault((r["dataset"], r["protocol"]), []).append(r)
    return groups


def paired_comparisons(records):
    """Per dataset and sampled protocol, every row against SASRec and the best baseline."""
    paired = {}
    for (dataset, protocol), rows in _groups(records).items():
        rows = [r for r in rows if r.get("scores_file")]
        if len(rows) > 1:
            paired[f"{dataset} ({protocol})"] = comparison.compare_rows(rows)
    return paired


def markdown_table(records, run_info, paired=None):
    metric_keys = sorted(
        {k for r in records for k in r["metrics"]},
        key=lambda k: (k.split("@")[0] != "hit", int(k.split("@")[1])),
    )
    header = [
        "dataset",
        "users",
        "model",
        "training",
        *metric_keys,
        "train s",
        "eval s",
        "trainable",
        "candidates sha256",
    ]
    lines = provenance_lines(run_info) + [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in records:
        cells = [
            f"{r['dataset']} ({r['protocol']})",
            str(r["n_test_users"]),
            r["model"],
            comparison.training_summary(r),
            *[f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "" for k in metric_keys],
            f"{r['train_seconds']:.0f}",
            f"{r['eval_seconds']:.0f}",
            f"{r['trainable_parameters']:,}",
            (r["candidates_sha256"] or "full ranking")[:12],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for group, result in (paired or {}).items():
        lines += ["", f"Paired comparisons, {group}:", *comparison.markdown_lines(result)]
    lines += cold_slice_table(records)
    return lines


def cold_slice_table(records):
    rows = [r for r in records if r.get("cold_slice")]
    if not rows:
        return []
    n = rows[0]["cold_slice"]["max_train_interactions"]
    lines = [
        "",
        f"Cold-item slice: test users whose target item has at most {n} training interactions.",
        "",
        "| dataset | model | users in slice | hit@1 | ndcg@5 | hit@1 (all users) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cold = r["cold_slice"]
        cells = [f"{cold['metrics'].get(k, float('nan')):.4f}" for k in HEADLINE]
        lines.append(
            f"| {r['dataset']} ({r['protocol']}) | {r['model']} | {cold['n_test_users']} | "
            + " | ".join(cells)
            + f" | {r['metrics'].get('hit@1', float('nan')):.4f} |"
        )
    return lines
