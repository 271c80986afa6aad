#!/bin/sh
# Install the hub into ./.venv and run it in the foreground on config.example.yaml.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/uone-hub run -c "${1:-config.example.yaml}"
