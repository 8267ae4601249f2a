"""Per-user score files of a benchmark: what every comparison, slice and fusion reads.

A score file holds one JSON record per test user: ``{"user", "items", "scores"}``, the items
as tokens with the positive first. The benchmark writes them gzip-compressed
(``<dataset>-<row>.jsonl.gz``); files of older runs are plain ``.jsonl``. Result files name
a score file by the path it was written under, so :func:`read_score_file` takes either name and
reads whichever of the two exists.
"""

import glob
import gzip
import json
import os

from recbole_instructrec.bench.atomic import write_bytes_atomic

PLAIN, COMPRESSED = ".jsonl", ".jsonl.gz"


def score_file_path(path):
    """The file that holds the scores named ``path``: ``path`` itself when it exists, else its
    compressed (``.jsonl`` -> ``.jsonl.gz``) or plain (``.jsonl.gz`` -> ``.jsonl``) twin;
    None when neither exists."""
    if not path:
        return None
    path = str(path)
    if os.path.isfile(path):
        return path
    if path.endswith(PLAIN):
        twin = path + ".gz"
    elif path.endswith(COMPRESSED):
        twin = path[: -len(".gz")]
    else:
        return None
    return twin if os.path.isfile(twin) else None


def score_file_of_result(result_file, recorded):
    """The score file a result file's row names as ``recorded``: that path when it exists, else
    the file of the same name in the ``scores/<run>/`` folder beside the result file. A run
    records the path it wrote under, which may be absolute and on another machine or checkout
    (the shuffled-titles control writes from a scratch worktree); the folder beside the result
    file is where the results are committed."""
    if not recorded or score_file_path(recorded) is not None:
        return recorded
    run_folder = os.path.basename(os.path.dirname(str(recorded)))
    beside = os.path.join(
        os.path.dirname(os.path.abspath(result_file)),
        "scores",
        run_folder,
        os.path.basename(str(recorded)),
    )
    return os.path.relpath(beside) if score_file_path(beside) is not None else recorded


def read_score_file(path):
    """The records of the score file named ``path`` (see :func:`score_file_path`), in file
    order. Raises FileNotFoundError when neither form exists."""
    found = score_file_path(path)
    if found is None:
        raise FileNotFoundError(f"no score file {path!r} (nor its .jsonl/.jsonl.gz twin)")
    opener = gzip.open if found.endswith(".gz") else open
    with opener(found, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_score_file(path, records):
    """``records`` as a gzip-compressed score file at ``path`` (which ends in ``.jsonl.gz``),
    written whole or not at all, byte for byte the same for the same records."""
    if not str(path).endswith(COMPRESSED):
        raise ValueError(f"score files are written compressed: {path!r} must end in .jsonl.gz")
    text = "".join(json.dumps(record) + "\n" for record in records)
    write_bytes_atomic(path, gzip.compress(text.encode("utf-8"), mtime=0))


def score_files_in(folder):
    """``(name, path)`` of every score file in ``folder``, sorted by name, where the name is the
    file name without ``.jsonl``/``.jsonl.gz``; a name stored in both forms is read once."""
    names = {}
    for pattern in (PLAIN, COMPRESSED):
        for path in glob.glob(os.path.join(folder, "*" + pattern)):
            name = os.path.basename(path)[: -len(pattern)]
            names.setdefault(name, score_file_path(os.path.join(folder, name + PLAIN)))
    return sorted(names.items())
