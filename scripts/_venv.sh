# Shared by scripts/run and scripts/test: a project virtualenv in .venv,
# reinstalled only when pyproject.toml changed since the last install.
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "broxy-tray needs Python 3.11 or newer; set PYTHON=/path/to/python3.11+" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv || return 1
  fi
  local stamp=".venv/.installed${extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip || return 1
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" || return 1
    touch "$stamp"
  fi
}

# Install Debian packages the tests use, when missing and when we may (root with apt-get).
# Without them the tests that need them skip, saying why.
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: Debian packages ${missing[*]} are missing (install them as root); tests that need them will skip" >&2
    return 0
  fi
  echo "== installing Debian packages: ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null; then
    echo "warning: could not install ${missing[*]}; tests that need them will skip" >&2
  fi
}
