#!/usr/bin/env bash
# Creates (once) the Python virtualenv of the analysts' examples in .logbook/venv, with the
# confluent-kafka client from PyPI, and prints the path of its python. Idempotent: an existing
# venv that already imports confluent_kafka is reused.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOGBOOK_VENV:-$root/.logbook/venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'confluent-kafka>=2.3,<3' >&2
fi
echo "$venv/bin/python"
