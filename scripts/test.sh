#!/usr/bin/env bash
# Runs syncd's test suite: installs what it needs (scripts/setup.sh), checks lint, format
# and types (ruff, mypy: strict on the decision modules), then pytest.
# Arguments go to pytest, e.g.  bash scripts/test.sh tests/test_pgserver.py -x
# PostgreSQL is started (and stopped) by the test session itself: see tests/pgserver.py.
# Exits non-zero when a test fails, and also when no test was collected (pytest's 5).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "test.sh: ruff check, ruff format --check, mypy" >&2
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy

rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

# the sync suite's S3 variant: the same end-to-end tests, storing into moto's standalone
# server and into SeaweedFS (both started on loopback by the tests); only the whole run
if [ "$#" -eq 0 ]; then
  for store in moto seaweedfs; do
    echo "test.sh: the sync suite on S3 ($store)" >&2
    SYNCD_TEST_STORAGE=$store .venv/bin/python -m pytest -q tests/test_sync.py tests/test_sync_edges.py tests/test_verify.py
  done
fi
