"""Writing benchmark reports: JSON with everything, Markdown with the provenance on top."""

import json
import os
import platform
import subprocess
import sys
import time

import torch

from recbole_instructrec.bench.atomic import write_text_atomic

EXCLUDE_RESULTS = ":(exclude)benchmarks/results"


def provenance_lines(info, extra=""):
    machine = info["machine"]
    changes = " (with uncommitted changes)" if info.get("uncommitted_changes") else ""
    return [
        f"Command: `{info['command']}`  ",
        f"Commit: `{info['commit']}`{changes}  ",
        f"Machine: {machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}, "
        f"GPU: {machine['gpu'] or 'none'}{extra}  ",
        f"Finished: {info['finished']}",
        "",
    ]


def save_report(out_dir, stem, payload, lines, quiet=False):
    """``stem``.json (``payload``) and ``stem``.md (``lines``) under ``out_dir``."""
    write_text_atomic(os.path.join(out_dir, f"{stem}.json"), json.dumps(payload, indent=2))
    text = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(out_dir, f"{stem}.md"), text)
    if not quiet:
        print(text)
    return text


def run_info(command):
    """Command, commit (and whether the tree was dirty) and machine of a measurement."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "command": command or " ".join(sys.argv),
        "commit": git("rev-parse", "HEAD") or "unknown",
        # Result files a run rewrites (candidates, reports) are not changes to the measured code.
        "uncommitted_changes": bool(
            git("status", "--porcelain", "--untracked-files=no", "--", ".", EXCLUDE_RESULTS)
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
