# Shared by start.sh and test.sh: an idempotent ./.venv with the given requirement files.

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv; then
      echo "camd: python3 cannot create a venv; install it with: sudo apt-get install python3-venv" >&2
      exit 1
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  fi
  # One stamp per requirement file (and one for camd itself), so that start.sh and test.sh,
  # which ask for different sets, share one venv without reinstalling each other's packages.
  local stamps=.venv/.camd-stamps
  mkdir -p "$stamps"
  rm -f .venv/.camd-requirements # the single stamp of before, which each script overwrote with its own set
  local file want todo=()
  for file in "$@"; do
    want=$(sha256sum < "$file" | cut -d' ' -f1)
    [ "$(cat "$stamps/$file" 2>/dev/null)" = "$want" ] || todo+=("$file")
  done
  if [ ${#todo[@]} -gt 0 ]; then
    echo "camd: installing Python packages into .venv (${todo[*]}) ..." >&2
    local args=()
    for file in "${todo[@]}"; do args+=(-r "$file"); done
    .venv/bin/python -m pip install --disable-pip-version-check "${args[@]}"
    for file in "${todo[@]}"; do sha256sum < "$file" | cut -d' ' -f1 > "$stamps/$file"; done
  fi
  want=$(sha256sum < pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamps/pyproject.toml" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/camd ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$want" > "$stamps/pyproject.toml"
  fi
}

# Installs Debian packages that are missing (as root, or with sudo).
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "camd: installing ${missing[*]} with apt-get ..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
