#!/usr/bin/env bash
# Installs everything syncd needs to be built, tested and demonstrated, on Debian:
#   - PostgreSQL (the test suite starts its own throw-away server from these binaries),
#   - exiftool (libimage-exiftool-perl: the tests read the XMP sidecars back with it),
#   - systemd (tests/test_deploy.py checks deploy/'s units with systemd-analyze),
#   - a virtualenv in .venv holding syncd (editable) and its [test] extras.
# Idempotent: run it as often as you like.
#
# Usage: scripts/setup.sh [--bench | --runtime]
#   --bench     also install nginx-light, aria2, rclone and curl (for benchmarks/)
#   --runtime   only what syncd needs to run (scripts/demo.sh): no system packages, no
#               test dependencies; a .venv set up for the tests is good enough as it is
#
# Environment:
#   CI=true              always run apt-get update + install and pip install
#   PYTHON=python3.11    the interpreter to build .venv from (default: python3)
#   SETUP_FORCE=1  don't skip steps that look done already
set -euo pipefail
cd "$(dirname "$0")/.."

bench=0
runtime=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --runtime) runtime=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.syncd-setup-stamp"

log() { echo "setup: $*" >&2; }

truthy() { case "${1:-}" in ""|0|false|False|FALSE|no|No|NO) return 1 ;; *) return 0 ;; esac; }
in_ci() { truthy "${CI:-}"; }
forced() { truthy "${SETUP_FORCE:-}"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

have_postgres() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      return 0
    fi
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

have_bench_tools() {
  local c
  for c in nginx aria2c rclone curl; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || return 1
  done
}

# --- system packages -------------------------------------------------------
apt_pkgs=(postgresql libimage-exiftool-perl systemd)
if [ "$bench" -eq 1 ]; then
  apt_pkgs+=(nginx-light aria2 rclone curl)
fi

need_apt=0
if [ "$runtime" -eq 1 ]; then
  need_apt=0
elif in_ci || forced; then
  need_apt=1
elif ! have_postgres || ! command -v exiftool >/dev/null 2>&1; then
  need_apt=1
elif ! command -v systemd-analyze >/dev/null 2>&1; then
  need_apt=1
elif [ "$bench" -eq 1 ] && ! have_bench_tools; then
  need_apt=1
fi

if [ "$runtime" -eq 1 ]; then
  log "runtime only: system packages not needed"
elif [ "$need_apt" -eq 1 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  apt_opts=(-q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
    --no-install-recommends "${apt_pkgs[@]}" >&2
else
  log "system packages already present (apt skipped)"
fi

# --- virtualenv ------------------------------------------------------------
venv_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

if ! venv_ok; then
  if [ -e "$VENV" ]; then
    log "$VENV is unusable (missing interpreter or Python < 3.11): recreating it"
    rm -rf "$VENV"
  fi
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi

# Re-install only when pyproject.toml (or the interpreter) changed since the last
# successful install; CI always installs.
want_stamp="$( { cat pyproject.toml; "$VENV/bin/python" -VV; } | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"
RUNTIME_STAMP="$VENV/.syncd-runtime-stamp"
if [ "$runtime" -eq 1 ]; then
  if [ "$want_stamp" = "$have_stamp" ] || [ "$want_stamp" = "$(cat "$RUNTIME_STAMP" 2>/dev/null || true)" ]; then
    log "$VENV is up to date (pip skipped)"
  else
    log "pip install -e . (runtime dependencies only)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --no-input -e . >&2
    echo "$want_stamp" > "$RUNTIME_STAMP"
  fi
elif in_ci || forced || [ "$want_stamp" != "$have_stamp" ] || [ ! -x "$VENV/bin/syncd" ] ||
  { [ "$bench" -eq 1 ] && [ ! -x "$VENV/bin/py-spy" ]; }; then
  extras=test
  if [ "$bench" -eq 1 ]; then extras=test,bench; fi
  log "pip install -e '.[$extras]'"
  rm -f "$STAMP"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --no-input -e ".[$extras]" >&2
  echo "$want_stamp" > "$STAMP"
else
  log "$VENV is up to date (pip skipped)"
fi

log "done"
