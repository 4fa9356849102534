#!/usr/bin/env bash
# Development entry point on any Debian-like machine with Python 3.11+:
#   ./dev.sh demo [appliance run flags]   set up .venv and run the appliance in demo mode
#   ./dev.sh test [pytest args]           set up .venv (+ chromium, systemd, shellcheck) and run the tests
#   ./dev.sh arm64-check [bookworm|trixie|all]   install.sh for real in arm64 Debian roots (qemu; root, slow)
# On the device itself use install.sh instead.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

need_python() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "dev.sh: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
        echo "  fix: install python3.11+ and run again, or PYTHON=/path/to/python3.11 ./dev.sh ..." >&2
        exit 2
    fi
}

setup_venv() {  # $1: pip extras, e.g. "[test]"
    need_python
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".$1"
}

apt_install() {  # installs Debian packages when we may (root or sudo); otherwise says what is missing
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "dev.sh: not root and no sudo: skipping apt packages ${missing[*]} (their tests will skip)" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: no apt-get: install ${missing[*]} yourself (their tests will skip)" >&2
        return 0
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

case "${1:-}" in
    demo)
        shift
        setup_venv ""
        exec "$VENV/bin/appliance" run --demo "$@"
        ;;
    test)
        shift
        # chromium: the page tests; systemd: systemd-analyze for the unit; shellcheck: install.sh
        apt_install chromium systemd shellcheck
        setup_venv "[test]"
        "$VENV/bin/ruff" check appliance tests
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    arm64-check)
        shift
        # not part of .ci/run (minutes per release): run it before changing install.sh or dependencies
        export APPLIANCE_MODELS_FROM="${APPLIANCE_MODELS_FROM:-$(cd .. && pwd)/shared/models}"
        exec bash tools/arm64_check.sh "$@"
        ;;
    *)
        sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
