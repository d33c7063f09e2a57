# Sourced by scripts/test, scripts/demo, scripts/bench: finds a Python >= 3.10
# (3.12 preferred, the project's development version), creates or reuses the
# project virtualenv .venv and installs exactly requirements/dev.lock (every
# dependency pinned with its hashes: a fresh machine gets what CI got) plus the
# package itself, editable. Reuse is keyed on a hash of pyproject.toml and the
# lock, so re-runs skip pip entirely and a changed lock is installed again.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLIGHTDECK_DEV_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements/dev.lock"

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
  # The lock holds the dev extras, a superset of the others (the demo asks for
  # "all"): one environment serves every caller, whatever it asks for.
  local stamp want pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
  want="$(cat "$ROOT/pyproject.toml" "$LOCK" | sha256sum | cut -c1-16)-lock"
  stamp="$VENV/.flightdeck-installed"
  if [ -x "$VENV/bin/python" ] && python_ok "$VENV/bin/python" && [ -f "$stamp" ] \
      && grep -qx -- "$want" "$stamp"; then
    return 0  # up to date
  fi
  if ! [ -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
    local py
    py="$(find_python)"
    echo "==> creating virtualenv $VENV with $("$py" --version)" >&2
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  echo "==> installing requirements/dev.lock and flightdeck-sensor into $VENV" >&2
  "${pip[@]}" install --quiet --upgrade pip >&2 2>/dev/null || true
  "${pip[@]}" install --quiet --require-hashes -r "$LOCK" >&2
  # the package alone: its dependencies are the lock's
  "${pip[@]}" install --quiet --no-deps -e "$ROOT" >&2
  echo "$want" > "$stamp"
}

export LITELLM_LOCAL_MODEL_COST_MAP=True
