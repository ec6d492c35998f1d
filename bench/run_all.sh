#!/usr/bin/env bash
# Run every benchmark once and print its figures. Needs the project venv (scripts/run or scripts/test sets it up).
set -euo pipefail
cd "$(dirname "$0")"
for b in config_load.py reload_latency.py idle_memory.py; do
  ../.venv/bin/python "$b"
done
for mode in stdio sdk http; do
  ../.venv/bin/python connections.py "$mode"
done
../.venv/bin/python signin_latency.py
../.venv/bin/python token_lifecycle.py
../.venv/bin/python proxy_roundtrip.py
../.venv/bin/python proxy_memory.py
../.venv/bin/python bridge_restart.py
../.venv/bin/python tray_figures.py all
../.venv/bin/python hardening.py all
