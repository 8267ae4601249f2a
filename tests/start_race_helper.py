"""Started by test_start_race.py, in an empty folder, as ``python start_race_helper.py <json>``.

It runs InstructRec with RecBole's launcher (``nproc=2``, gloo on CPU) and widens the race that
issue reports showed: every existence check of a start folder (``log/``, ``saved/``) sleeps a
second after it looked, so both ranks see "missing" before either creates it. With
``RACE_WITHOUT_FIX=1`` every RecBole module gets RecBole 1.2.1's own ``ensure_dir`` back, and the
slower rank must crash with FileExistsError: the test can fail.

Spawned ranks re-run this file's top level (as ``__mp_main__``), so the delay and the
environment switch hold in them too.
"""

import importlib
import json
import os
import sys
import time

import recbole_instructrec
from recbole_instructrec import plugin

_START_DIRS = {"log", os.path.join("log", "InstructRec"), "saved"}
_looked = os.path.exists


def _slow_exists(path):
    found = _looked(path)
    if os.path.normpath(str(path)) in _START_DIRS:
        time.sleep(1.0)
    return found


os.path.exists = _slow_exists

if os.environ.get("RACE_WITHOUT_FIX") == "1":

    def recbole_ensure_dir(dir_path):  # recbole/utils/utils.py, 1.2.1
        if not os.path.exists(dir_path):
            os.makedirs(dir_path)

    for name in plugin._MODULES_WITH_ENSURE_DIR:
        importlib.import_module(name).ensure_dir = recbole_ensure_dir


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    result = recbole_instructrec.run(
        "InstructRec", "tiny", config_dict=job["config"], nproc=2, port=job["port"]
    )
    print("TEST_RESULT", json.dumps(result["test_result"]))
