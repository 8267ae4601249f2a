"""Does the model learn from interactions, or only from what titles mean?

    python benchmarks/shuffled_titles.py [--models ...] [--tag ml-100k-uni9-shuffled-titles]
        [--set KEY=VALUE] [--model-config MODEL=FILE.yaml] [--stored-row ROW=bench.json]
        [--out benchmarks/experiments/shuffled-titles/results]

A control dataset: ml-100k with every item's title and year replaced by another item's (one
seeded permutation), so each item keeps a unique name that carries no meaning; interactions,
genres and users are unchanged. Then every row is trained and scored on it, uni9, one stored
candidate set:

* SASRec (reads ids only, so it should not move);
* InstructRec zero-shot, which can only fall to chance;
* InstructRec LoRA as the default main job trains it: what it reaches is what it learned from
  co-occurrence;
* the compact item head and the hybrid item head (SASRec's item embeddings, from the SASRec row
  of the same run or a ``--stored-row``), whose item vectors learn from the interactions.

Genres stay: they are the categories the search requests and the item text name, so the
control removes what titles and years mean, not what genres mean.

With ml-100k's dataset settings (``SOURCE_DATASET_SETTINGS``) the control's stored candidates
are the headline's, so its rows pair with the headline's rows too (SASRec, which reads ids
only, trains on identical rows: ``tests/test_shuffled_titles.py``).

The dataset is written under ``<out>/tmp/`` (not committed); the results go to
``bench-<tag>.*`` like every benchmark.
"""

import argparse
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_MODELS = (
    "SASRec,InstructRec-zeroshot,InstructRec-LoRA,InstructRec-ItemHead-compact,"
    "InstructRec-ItemHead-hybrid"
)
TEXT_COLUMNS = ("movie_title:token_seq", "release_year:token")
# RecBole reads properties/dataset/<name>.yaml by the dataset's name, and the control's new name
# has none (RecBole falls back to sample.yaml). ml-100k's sets normalize_all; without it the
# timestamps stay raw seconds, which float32 rounds to 32 s, so ties reorder users'
# interactions and 147 test targets (and 218 candidate rows) differ from ml-100k's. With it, the
# control's stored candidates are ml-100k's, so its rows pair with the headline's.
SOURCE_DATASET_SETTINGS = {"normalize_all": True}


def shuffled_titles_dataset(source_dir, name, out_root, seed=2020):
    """Write ``<out_root>/<name>-shuffled-titles/``: the dataset with its item texts permuted."""
    import numpy as np
    import pandas as pd

    from recbole_instructrec.bench.atomic import write_text_atomic

    target_name = f"{name}-shuffled-titles"
    target = os.path.join(out_root, target_name)
    os.makedirs(target, exist_ok=True)
    for entry in os.listdir(source_dir):
        stem, ext = os.path.splitext(entry)
        if stem == name and ext in (".inter", ".user"):
            shutil.copy(os.path.join(source_dir, entry), os.path.join(target, target_name + ext))
    items = pd.read_csv(
        os.path.join(source_dir, f"{name}.item"), sep="\t", dtype=str, keep_default_na=False
    )
    missing = [c for c in TEXT_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"{name}.item has no {missing}: this control permutes ml-100k's texts.")
    order = np.random.default_rng(seed).permutation(len(items))
    for column in TEXT_COLUMNS:
        items[column] = items[column].to_numpy()[order]
    write_text_atomic(
        os.path.join(target, f"{target_name}.item"), items.to_csv(sep="\t", index=False)
    )
    return out_root, target_name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--source", default=None, help="folder of ml-100k (default: RecBole's)")
    parser.add_argument(
        "--out",
        default=os.path.join(ROOT, "benchmarks", "experiments", "shuffled-titles", "results"),
    )
    parser.add_argument("--tag", default="ml-100k-uni9-shuffled-titles")
    parser.add_argument("--set", action="append", default=[], help="key=value for every row")
    parser.add_argument(
        "--model-config", action="append", default=[], help="MODEL=FILE.yaml for one row"
    )
    parser.add_argument(
        "--stored-row",
        action="append",
        default=[],
        metavar="ROW=bench-*.json",
        help="a row's scores from an earlier run on the same candidates (SASRec reads ids only: "
        "the headline's SASRec row is the control's)",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/shuffled_titles.py " + " ".join(argv or sys.argv[1:])
    sys.argv = sys.argv[:1]  # RecBole reads the command line as settings

    import recbole

    import recbole_instructrec  # noqa: F401
    from recbole_instructrec.bench import run_benchmark
    from recbole_instructrec.quick_start.cli import key_values, model_settings, row_files

    source = args.source or os.path.join(
        os.path.dirname(recbole.__file__), "dataset_example", "ml-100k"
    )
    root, name = shuffled_titles_dataset(source, "ml-100k", os.path.join(args.out, "tmp"))
    models = [m for m in args.models.split(",") if m]
    return run_benchmark(
        datasets=[name],
        models=models,
        data_path=root,
        common_settings={**SOURCE_DATASET_SETTINGS, **key_values(args.set)},
        model_settings=model_settings(args.model_config),
        stored_rows=row_files(args.stored_row, "--stored-row"),
        out_dir=args.out,
        tag=args.tag,
        command=command,
    )


if __name__ == "__main__":
    main()
