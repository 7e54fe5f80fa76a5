#!/usr/bin/env bash
# pmnb developer entry point: the two README commands.
#   ./dev.sh dashboards   create/refresh .venv with the apps extra, serve the dashboards (Voila)
#   ./dev.sh test         create/refresh .venv with every extra, run the whole test suite
# Works from a fresh clone on a bare Debian 12 machine with Python >= 3.11 and gcc; installs
# python3-venv / python3-dev through apt only when they are missing.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=${PMNB_VENV:-.venv}

say() { printf '\033[1m[pmnb]\033[0m %s\n' "$*"; }

need_apt() {
    local pkgs=("$@")
    say "installing with apt: ${pkgs[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}"
}

ensure_python() {
    command -v "$PY" >/dev/null || need_apt python3
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "pmnb needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=python3.x" >&2
        exit 1
    }
    local missing=()
    "$PY" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || missing+=(python3-dev)
    command -v gcc >/dev/null || missing+=(gcc)
    if [ ${#missing[@]} -gt 0 ]; then need_apt "${missing[@]}"; fi
}

ensure_venv() {
    local extras=$1
    ensure_python
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    say "installing pmnb[$extras] into $VENV (editable; compiles the core)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
}

cmd=${1:-}
shift || true
case "$cmd" in
    dashboards)
        ensure_venv apps
        exec "$VENV/bin/pmnb" dashboards "$@"
        ;;
    test)
        ensure_venv all
        # the browser tests (tests/browser) drive Debian's chromium through Playwright;
        # Playwright's own browser download is not used (`playwright install` is never run)
        [ -x /usr/bin/chromium ] || need_apt --no-install-recommends chromium
        say "running the whole test suite (all markers)"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh dashboards|test [args...]" >&2
        exit 2
        ;;
esac
