#!/usr/bin/env bash
# Install adaptkit and everything its demo and tests need (idempotent), on one of two stacks:
#   bash scripts/install.sh                   the qwen-asr stack into ./.venv: transformers 4.57.6 with
#                                             qwen-asr (the original Qwen3-ASR checkpoints, qwen_asr's client)
#   bash scripts/install.sh --stack current   the current stack into ./.venv-current: the latest
#                                             transformers 5 (its native speech LLMs), no qwen-asr
# System packages (espeak-ng, sox) come from Debian when missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=qwen-asr
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) STACK="${2:-}"; shift 2 ;;
    --stack=*) STACK="${1#--stack=}"; shift ;;
    *) echo "error: scripts/install.sh: $1: unknown argument (use --stack qwen-asr|current)" >&2; exit 2 ;;
  esac
done
case "$STACK" in
  qwen-asr) VENV=.venv; EXTRAS="all,test" ;;
  current) VENV=.venv-current; EXTRAS="current,test" ;;
  *) echo "error: scripts/install.sh: --stack: $STACK: use qwen-asr or current" >&2; exit 2 ;;
esac
if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # one installer at a time (the two stacks may install side by side); the second finds them there
    flock /tmp/adaptkit-install-apt.lock sh -c 'command -v espeak-ng >/dev/null && command -v sox >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null; }'
  else
    echo "warning: espeak-ng/sox missing; adaptkit synth needs them: sudo apt-get install espeak-ng sox" >&2
  fi
fi
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
# --no-compile: pip would byte-compile every file of every package (most of the install's CPU time);
# Python compiles just the modules a program imports, on first use, and keeps them in __pycache__
"$PIP" install -q --no-compile --upgrade pip
# the pinned CPU build first: an unpinned torch requirement can pull a multi-GB CUDA build
"$PIP" install -q --no-compile "torch==2.13.0"
if [ "$STACK" = current ]; then
  # the environment a current user has: the latest transformers 5 first; installing adaptkit into it
  # must leave that version alone (the core does not pin transformers to an old minor version)
  "$PIP" install -q --no-compile --upgrade "transformers>=5"
  before=$("$VENV/bin/python" -c "import transformers; print(transformers.__version__)")
  "$PIP" install -q --no-compile -e ".[$EXTRAS]"
  after=$("$VENV/bin/python" -c "import transformers; print(transformers.__version__)")
  if [ "$before" != "$after" ]; then
    echo "error: scripts/install.sh: installing adaptkit changed transformers $before -> $after" >&2
    exit 1
  fi
  echo "current stack: transformers $after kept by pip install adaptkit[$EXTRAS]"
else
  "$PIP" install -q --no-compile -e ".[$EXTRAS]"
fi
# byte-compile what adaptkit's commands import (pip's --no-compile left it to the first import, which
# every process repeats where PYTHONDONTWRITEBYTECODE is set: an import of adaptkit.train is 17 s of
# CPU uncached, 7 s cached)
env -u PYTHONDONTWRITEBYTECODE "$VENV/bin/python" -c "import adaptkit.cli, adaptkit.train, adaptkit.eval.run, adaptkit.compare"
