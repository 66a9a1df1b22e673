#!/usr/bin/env bash
# Runs schemathesis from a project-local virtual environment, creating it
# (or updating it when requirements.txt changed) from PyPI with every
# package pinned. Arguments go to `schemathesis`.
#   tools/contract/schemathesis.sh run https://127.0.0.1:8442/openapi.json ...
# STRATA_CONTRACT_VENV overrides the environment's place (default .venv/contract).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${STRATA_CONTRACT_VENV:-$root/.venv/contract}
lock=$root/tools/contract/requirements.txt
if [[ ! -x $venv/bin/schemathesis ]] || ! cmp -s "$lock" "$venv/requirements.txt"; then
	echo "[contract] installing schemathesis into $venv" >&2
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$lock" >&2
	cp "$lock" "$venv/requirements.txt"
fi
exec "$venv/bin/schemathesis" "$@"
