"""Writes the README's headline tables from the comparison files, so no number is typed twice.

    python benchmarks/render_headline.py          # rewrite the README's headline block
    python benchmarks/render_headline.py --check  # exit 1 if the README differs from the files

The block sits between the two HEADLINE markers in README.md; everything else is left alone.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- HEADLINE:START (benchmarks/render_headline.py) -->", "<!-- HEADLINE:END -->"
# (comparison file, title) in the order the README shows them.
TABLES = (
    ("headline-ml-100k-uni9.json", "ml-100k, all 943 users, uni9"),
    ("headline-amazon-games-2000u-uni9.json", "amazon-games, 2,000-user sample, uni9"),
)


def _cell(entry):
    low, high = entry["ci95"]
    text = f"{entry['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"
    return f"**{text}**" if entry["verdict"] != "no measurable difference" else text


def _verdict(against):
    hit, ndcg = (against[m]["verdict"] for m in ("hit@1", "ndcg@5"))
    return hit if hit == ndcg else f"HR@1: {hit}; NDCG@5: {ndcg}"


def render_table(path, title):
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    references = result["references"]
    best = references.get("best baseline (by validation)")
    lines = [
        f"**{title}** ({result['n_users']} test users, the same stored candidates for every "
        f"row; `benchmarks/results/{os.path.basename(path)}`, commit "
        f"`{result['run']['commit'][:10]}`, command in the file):",
        "",
        "| model | training | HR@1 | NDCG@5 | Δ HR@1 vs SASRec [95 % CI] | Δ NDCG@5 vs SASRec "
        f"[95 % CI] | vs {best or 'best baseline'} |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        sasrec = row["against"].get("SASRec")
        versus_best = row["against"].get("best baseline (by validation)")
        cells = [
            row["model"],
            row["training"],
            f"{row['metrics']['hit@1']:.4f}",
            f"{row['metrics']['ndcg@5']:.4f}",
            _cell(sasrec["hit@1"]) if sasrec else "reference",
            _cell(sasrec["ndcg@5"]) if sasrec else "reference",
            _verdict(versus_best) if versus_best else "reference",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render():
    lines = [START, ""]
    for name, title in TABLES:
        path = os.path.join(RESULTS, name)
        if os.path.isfile(path):
            lines += render_table(path, title) + [""]
    return "\n".join(lines + [END])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with open(README, encoding="utf-8") as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block to fill.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + render() + tail
    if args.check:
        if new != text:
            print(
                "README.md's headline tables differ from benchmarks/results: run "
                "python benchmarks/render_headline.py"
            )
            return 1
        return 0
    with open(README, "w", encoding="utf-8") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
