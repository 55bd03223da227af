#!/usr/bin/env bash
# Mutation testing of the decision modules (plan, streams, storage/keys, api/retry, summary,
# config): mutmut 3 with the repo's .venv, configured in pyproject.toml [tool.mutmut], then the
# score per module (scripts/mutation_score.py). Exits non-zero below 90% killed.
# A fresh run each time (mutants/ is removed first): a few minutes on one worker.
# Environment: MUTATION_CHILDREN=1 (mutmut's workers), MUTATION_MIN=90 (passing percent).
# Arguments go to `mutmut run`, e.g. a mutant name to rerun one: then mutants/ is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/mutmut ]; then
  echo "mutation.sh: .venv has no mutmut: run bash scripts/setup.sh first" >&2
  exit 2
fi
if [ "$#" -eq 0 ]; then
  rm -rf mutants
fi
mkdir -p mutants
# mutmut redraws its progress line in place; the log keeps the whole output
.venv/bin/mutmut run --max-children "${MUTATION_CHILDREN:-1}" "$@" > mutants/run.log 2>&1 || {
  rc=$?
  tail -n 40 mutants/run.log >&2
  echo "mutation.sh: mutmut run failed ($rc); the whole output is in mutants/run.log" >&2
  exit "$rc"
}
tail -n 2 mutants/run.log | tr '\r' '\n' | tail -n 2
.venv/bin/python scripts/mutation_score.py --min "${MUTATION_MIN:-90}"
