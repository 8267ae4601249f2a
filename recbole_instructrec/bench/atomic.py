"""Result files written whole or not at all.

Benchmarks may run side by side (and the ranks of a distributed run start together), so a file
is written under a private temporary name in its own folder and renamed into place: a reader
never sees half of it, and two writers of the same file never interleave their lines.
"""

import os
import tempfile


def write_bytes_atomic(path, data):
    """Write ``data`` to ``path``, creating its folder if needed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; result files are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` (UTF-8), creating its folder if needed."""
    write_bytes_atomic(path, text.encode("utf-8"))
