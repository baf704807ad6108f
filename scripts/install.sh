#!/usr/bin/env bash
# Install adaptkit and everything its demo and tests need into ./.venv (idempotent).
# System packages (espeak-ng, sox) come from Debian when missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null
  else
    echo "warning: espeak-ng/sox missing; adaptkit synth needs them: sudo apt-get install espeak-ng sox" >&2
  fi
fi
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# the pinned CPU build first: an unpinned torch requirement can pull a multi-GB CUDA build
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[all,test]"
