#!/usr/bin/env bash
# Install camd as a systemd service, from this checkout:
#   /opt/camd/venv            a venv with camd and its pinned dependencies
#   /etc/camd/camd.toml       every setting, commented, with its default (never overwritten)
#   /etc/systemd/system/      camd.service, and camd@.service made from it (one instance per camera)
#   /etc/sysusers.d/camd.conf the system user camd (in the video group)
#   /var/lib/camd             the state directory: users file, stills, and the first password
#                             in initial-password until it is changed
# then enables and starts camd.service and prints the URL and, the first time, the password.
# Idempotent: run it again after `git pull` to update (camd is restarted when anything changed).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: sudo systemd/install.sh [options]
       sudo systemd/install.sh --uninstall [--purge] [--root DIR]

  --root DIR               lay everything out under DIR instead of / (also: DESTDIR=DIR);
                           nothing is started, the unit is enabled by its wants symlink
  --no-start               install and enable, but do not start or restart camd now
  --python PY              the python3 to build the venv with (default: python3); with --root,
                           the image's own (e.g. /usr/bin/python3 of the same Debian release)
  --system-site-packages   let the venv see the system's Python packages
  --no-deps                install camd alone, not its dependencies (they must come from
                           the system: --system-site-packages, or PYTHONPATH); no network
  --wheels DIR             take the dependencies and the build tools from this folder of
                           wheels (pip download -d DIR -r requirements.txt setuptools); no network
  --uninstall              stop, disable and remove camd; keeps an edited config and the
                           state directory (users, stills)
  --purge                  with --uninstall: remove those too, and the camd user
  -h, --help               this text
EOF
}

ROOT="${DESTDIR:-}"
PYTHON=python3
UNINSTALL=0
PURGE=0
START=1
NO_DEPS=0
WHEELS=""
SYSTEM_SITE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift ;;
    --root=*) ROOT="${1#--root=}" ;;
    --python) PYTHON="${2:?--python needs an interpreter}"; shift ;;
    --python=*) PYTHON="${1#--python=}" ;;
    --no-start) START=0 ;;
    --no-deps) NO_DEPS=1 ;;
    --wheels) WHEELS="${2:?--wheels needs a directory}"; shift ;;
    --wheels=*) WHEELS="${1#--wheels=}" ;;
    --system-site-packages) SYSTEM_SITE=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" = / ] && ROOT=""
fi

if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || { echo "install.sh: --wheels $WHEELS is not a directory" >&2; exit 2; }
  WHEELS="$(cd "$WHEELS" && pwd)"
fi

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPT="$ROOT/opt/camd"
VENV="$OPT/venv"
VENV_AT_BOOT=/opt/camd/venv
ETC="$ROOT/etc/camd"
CONF="$ETC/camd.toml"
UNITS="$ROOT/etc/systemd/system"
WANTS="$UNITS/multi-user.target.wants"
SYSUSERS="$ROOT/etc/sysusers.d/camd.conf"
STATE="$ROOT/var/lib/camd"
FIRST_PASSWORD="$STATE/initial-password"
EXAMPLE="$OPT/camd.toml.example"

say() { printf 'camd: %s\n' "$*"; }
live() { [ -z "$ROOT" ]; }  # installing on this machine (not into a root for an image or a test)

if live && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root (sudo $0 $*), or give --root DIR" >&2
  exit 1
fi

# put SRC DEST MODE: copy only when the content differs; says so and returns 0 when it copied.
put() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    [ "$(stat -c %a "$2")" = "$3" ] || chmod "$3" "$2"
    return 1
  fi
  mkdir -p "$(dirname "$2")"
  install -m "$3" "$1" "$2.camd-new"
  mv -f "$2.camd-new" "$2"
  say "installed ${2#"$ROOT"}"
  return 0
}

# rmdir_up DIR...: remove each directory that is empty (parents of what we put in a --root).
rmdir_up() {
  for dir in "$@"; do
    [ -d "$dir" ] && rmdir --ignore-fail-on-non-empty "$dir"
  done
  return 0
}

# relocate_venv: a venv built under --root DIR names DIR/opt/camd/venv in its scripts' #! lines and
# activate scripts (pip writes the python it ran as); the image runs it at /opt/camd/venv, so
# every such line is made to name that path (the venv's python is reached by the same path there).
relocate_venv() {
  [ -n "$ROOT" ] || return 0
  # Plain bytes replaced, not a sed pattern: DIR may hold any character.
  "$VENV/bin/python" - "$VENV" "$VENV_AT_BOOT" <<'EOF'
import pathlib, sys
built, boot = (arg.encode() for arg in sys.argv[1:])
venv = pathlib.Path(sys.argv[1])
for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
    if path.is_file() and not path.is_symlink():
        data = path.read_bytes()
        if built in data:
            path.write_bytes(data.replace(built, boot))
EOF
  local python
  python="$(sed -n 's/^executable = //p' "$VENV/pyvenv.cfg")"
  if [ -n "$python" ] && [ ! -e "$ROOT$python" ] && [ ! -L "$ROOT$python" ]; then
    say "note: the venv runs $python, which $ROOT does not have yet: the image needs that python" \
      "(or run again with --python set to the image's own)"
  fi
  return 0
}

# instance_unit OUT: camd@.service, made from camd.service (the sed script says what differs).
instance_unit() {
  sed -f "$SRC/systemd/camd@.service.sed" "$SRC/systemd/camd.service" > "$1"
  local line
  for line in 'Description=.* for %i ' 'ExecStart=.* --config /etc/camd/%i\.toml$' 'SyslogIdentifier=camd@%i$' \
      'StateDirectory=camd/%i$'; do
    if ! grep -q "^$line" "$1"; then
      echo "install.sh: systemd/camd@.service.sed no longer matches camd.service (no line $line)" >&2
      exit 1
    fi
  done
}

uninstall() {
  if live && command -v systemctl >/dev/null; then
    mapfile -t instances < <(find "$UNITS" -path '*.wants/camd@*.service' -printf '%f\n' 2>/dev/null | sort -u)
    systemctl disable --now camd.service "${instances[@]}" 2>/dev/null || true
  fi
  find "$UNITS" \( -name camd.service -o -name 'camd@*.service' \) -type l -delete 2>/dev/null || true
  rm -f "$UNITS/camd.service" "$UNITS/camd@.service" "$SYSUSERS"
  if [ -d "$ETC" ]; then
    for conf in "$ETC"/*.toml; do
      [ -e "$conf" ] || continue
      if [ "$PURGE" = 1 ] || { [ -f "$EXAMPLE" ] && cmp -s "$conf" "$EXAMPLE"; } \
          || cmp -s "$conf" "$SRC/systemd/camd.toml.example"; then
        rm -f "$conf"
      else
        say "kept your edited ${conf#"$ROOT"} (--purge removes it)"
      fi
    done
    rmdir_up "$ETC"
  fi
  rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$STATE"
    if live; then
      if id camd >/dev/null 2>&1; then userdel camd || true; fi
      if getent group camd >/dev/null; then groupdel camd 2>/dev/null || true; fi
    fi
  elif [ -d "$STATE" ]; then
    say "kept ${STATE#"$ROOT"} (users, stills; --purge removes it)"
  fi
  if live && command -v systemctl >/dev/null; then
    systemctl daemon-reload || true
  else
    rmdir_up "$WANTS" "$UNITS" "$ROOT/etc/systemd" "$ROOT/etc/sysusers.d" "$ROOT/etc" "$ROOT/opt" \
      "$ROOT/var/lib" "$ROOT/var"
  fi
  say "uninstalled"
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

CHANGED=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip_from=()
[ -n "$WHEELS" ] && pip_from=(--no-index --find-links "$WHEELS")

# --- the venv and the package ---------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the venv ${VENV#"$ROOT"}"
  args=()
  [ "$SYSTEM_SITE" = 1 ] && args+=(--system-site-packages)
  if ! "$PYTHON" -m venv "${args[@]}" "$VENV"; then
    echo "install.sh: $PYTHON cannot create a venv; install it with: sudo apt-get install python3-venv" >&2
    exit 1
  fi
  CHANGED=1
fi
# What is installed is recorded as a hash of the sources and requirements: unchanged means no pip at all.
want="$(cd "$SRC" && find camd web pyproject.toml requirements.txt README.md -type f \
  ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
want="$want deps=$((1 - NO_DEPS))"
stamp="$OPT/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  build="$work/build"
  mkdir "$build"
  # Build from a copy: pip and setuptools leave build/ and *.egg-info behind in the tree they build.
  (cd "$SRC" && cp -r camd web pyproject.toml requirements.txt README.md "$build/")
  find "$build" -name __pycache__ -prune -exec rm -rf {} +
  if [ "$NO_DEPS" = 1 ]; then
    if ! "$VENV/bin/python" -c 'import setuptools.command.bdist_wheel' 2>/dev/null \
        && ! "$VENV/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
      echo "install.sh: --no-deps builds camd offline: the venv needs setuptools 70.1 or later, or setuptools" \
        "and wheel (e.g. sudo apt-get install python3-wheel, with --system-site-packages)" >&2
      exit 1
    fi
    say "installing camd into the venv (no dependencies)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
      --no-index "$build"
  else
    say "installing camd and its dependencies into the venv (this takes a while the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_from[@]}" \
      -r "$build/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_from[@]}" --no-deps "$build"
  fi
  relocate_venv
  echo "$want" > "$stamp"
  CHANGED=1
fi
put "$SRC/README.md" "$OPT/README.md" 644 || true
put "$SRC/systemd/camd.toml.example" "$EXAMPLE" 644 || true

# --- the user, the config, the units ------------------------------------------------------
put "$SRC/systemd/camd.sysusers" "$SYSUSERS" 644 || true
if live; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$SYSUSERS"
  elif ! id camd >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/camd --no-create-home --shell /usr/sbin/nologin --user-group camd
    usermod -a -G video camd
  fi
fi

if [ -e "$CONF" ]; then
  cmp -s "$CONF" "$SRC/systemd/camd.toml.example" || say "kept your ${CONF#"$ROOT"}"
else
  put "$SRC/systemd/camd.toml.example" "$CONF" 644 || true
fi

put "$SRC/systemd/camd.service" "$UNITS/camd.service" 644 && CHANGED=1
instance_unit "$work/camd@.service"
put "$work/camd@.service" "$UNITS/camd@.service" 644 && CHANGED=1

# --- the first user ---------------------------------------------------------------------------
mkdir -p "$STATE"
chmod 700 "$STATE"
live && chown camd:camd "$STATE"
password=""
if [ ! -s "$STATE/users" ]; then
  password="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))')"
  as_camd=()
  live && as_camd=(runuser -u camd --)
  # As under systemd: STATE_DIRECTORY is the state directory, and the config file is read.
  # python -m camd, not bin/camd: under --root that script names the python at its path in the image.
  printf '%s\n' "$password" | "${as_camd[@]}" env STATE_DIRECTORY="$STATE" \
    "$VENV/bin/python" -m camd passwd admin --config "$CONF" >/dev/null
  # Kept for whoever did not see this output, readable by root and camd only; `camd passwd admin` removes it.
  (umask 077 && printf '%s\n' "$password" > "$FIRST_PASSWORD")
  live && chown camd:camd "$FIRST_PASSWORD"
fi

# --- enable and start -----------------------------------------------------------------------------
if live && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --quiet camd.service
  if [ "$START" = 1 ]; then
    if [ "$CHANGED" = 1 ]; then systemctl restart camd.service; else systemctl start camd.service; fi
  fi
else
  # No running systemd (an image, a container, a test root): enabling is the wants symlink.
  mkdir -p "$WANTS"
  if [ "$(readlink "$WANTS/camd.service" 2>/dev/null)" != /etc/systemd/system/camd.service ]; then
    ln -sfn /etc/systemd/system/camd.service "$WANTS/camd.service"
    say "enabled camd.service"
  fi
fi

# --- what to open -------------------------------------------------------------------------------
read -r port scheme < <("$VENV/bin/python" - "$CONF" <<'EOF'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as handle:
        config = tomllib.load(handle)
except (OSError, ValueError):
    config = {}
print(config.get("port", 8080), "https" if config.get("tls_cert") else "http")
EOF
)
host="$(hostname 2>/dev/null || echo localhost)"
say "installed: camd.service is enabled$([ "$START" = 1 ] && live && echo " and running")"
say "open ${scheme}://${host}.local:${port}/  (or ${scheme}://<this machine's address>:${port}/)"
passwd_hint="sudo -u camd env STATE_DIRECTORY=/var/lib/camd /opt/camd/venv/bin/camd passwd admin"
if [ -n "$password" ]; then
  say "first login: user admin, password $password"
  say "it is kept in ${FIRST_PASSWORD#"$ROOT"} until you change it with: $passwd_hint"
elif [ -s "$FIRST_PASSWORD" ]; then
  say "first login: user admin, password in ${FIRST_PASSWORD#"$ROOT"} (sudo cat it); change it with: $passwd_hint"
else
  say "users: ${STATE#"$ROOT"}/users is kept as it is"
fi
say "settings: ${CONF#"$ROOT"} (then: sudo systemctl reload camd, or restart); logs: journalctl -u camd"
