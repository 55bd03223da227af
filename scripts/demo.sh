#!/usr/bin/env bash
# Installs only what syncd needs to run (scripts/setup.sh --runtime: no test tools, no
# system packages), then runs `syncd demo`: the built-in
# Shutterstock API simulator synced into ./syncd-demo/. Needs no account and no network.
# Arguments go to `syncd demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

# setup's chatter goes to stderr so that stdout carries only the demo's own output.
bash scripts/setup.sh --runtime >&2

exec .venv/bin/syncd demo "$@"
