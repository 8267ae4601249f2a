"""Writing benchmark reports: JSON with everything, Markdown with the provenance on top."""

import json
import os


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
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, f"{stem}.md"), "w", encoding="utf-8") as f:
        f.write(text)
    if not quiet:
        print(text)
    return text
