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
    # Installs only when pyproject.toml changed since the last install with these extras (a stamp in
    # .venv), so a checkout that is set up starts offline.
    need_python
    local stamp="$VENV/.dev-sh-installed" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $1"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] \
        && { grep -qxF "$want" "$stamp" || grep -qxF "${want% *} [test]" "$stamp"; }; then
        return 0  # the [test] install has everything the demo needs too
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".$1"
    echo "$want" > "$stamp"
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

dev_models_from() {  # the development machines keep verified models in ../shared/models: copy from there
    if [ -z "${APPLIANCE_MODELS_FROM:-}" ] && [ -d ../shared/models ]; then
        APPLIANCE_MODELS_FROM="$(cd ../shared/models && pwd)"
        export APPLIANCE_MODELS_FROM
    fi
}

case "${1:-}" in
    demo)
        shift
        setup_venv ""
        dev_models_from
        exec "$VENV/bin/appliance" run --demo "$@"
        ;;
    test)
        shift
        # chromium: the page tests; systemd: systemd-analyze for the unit; shellcheck: install.sh;
        # gcc: the stand-in libedgetpu the Edge TPU tests compile;
        # mosquitto (+ openssl for its test CA): the MQTT tests run a real broker on 127.0.0.1
        apt_install chromium systemd shellcheck gcc libc6-dev mosquitto openssl
        setup_venv "[test]"
        dev_models_from
        "$VENV/bin/ruff" check appliance tests tools
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
