# Sourced by scripts/test, scripts/demo, scripts/bench: finds a Python >= 3.10
# (3.12 preferred, the project's development version), creates or reuses the
# project virtualenv .venv and installs the package with its extras.
# Reuse is keyed on a hash of pyproject.toml so re-runs skip pip entirely.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLIGHTDECK_DEV_VENV:-$ROOT/.venv}"

python_ok() {
  "$1" -c 'import sys, venv; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 14) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  # pyenv's python3.X shims need PYENV_VERSION, so look at the installs themselves first.
  for candidate in "${FLIGHTDECK_PYTHON:-}" \
      "$HOME"/.pyenv/versions/3.12.*/bin/python3 \
      python3.12 python3.13 python3.11 python3.10 \
      "$HOME"/.pyenv/versions/3.13.*/bin/python3 "$HOME"/.pyenv/versions/3.11.*/bin/python3 \
      "$HOME"/.pyenv/versions/3.10.*/bin/python3 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "error: no Python between 3.10 and 3.13 found (set FLIGHTDECK_PYTHON=/path/to/python3)" >&2
  return 1
}

ensure_venv() {
  local extras="${1:-dev}" stamp want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
  stamp="$VENV/.flightdeck-installed"
  if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python" && [ -f "$stamp" ] \
      && { grep -qx -- "$want" "$stamp" || { [ "$extras" = all ] && grep -qx -- "${want%-all}-dev" "$stamp"; }; }; then
    return 0  # up to date (the dev extras include all of the demo's)
  fi
  if ! [ -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
    local py
    py="$(find_python)"
    echo "==> creating virtualenv $VENV with $("$py" --version)" >&2
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  echo "==> installing flightdeck-sensor[$extras] into $VENV (first run only)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 2>/dev/null || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$extras]" >&2
  echo "$want" > "$stamp"
}

export LITELLM_LOCAL_MODEL_COST_MAP=True
