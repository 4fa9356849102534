#!/usr/bin/env bash
# Install the teachable camera appliance as a systemd service (run from a checkout, as root):
#   sudo ./install.sh [--edgetpu] [--models-from DIR] [--no-start] [--dry-run]
#   sudo ./install.sh --uninstall [--purge] [--dry-run]
#
#   --edgetpu          install the Edge TPU runtime pair (also done when a Coral is plugged in / /dev/apex_* exists)
#   --models-from DIR  copy the models from DIR (hash-checked) instead of downloading them (offline installs)
#   --no-start         install and enable the service, but do not start it now
#   --dry-run          print every action without doing any
#   --uninstall        remove the service, the program and the user; keep /var/lib/appliance (taught
#                      classes) and /etc/appliance
#   --purge            with --uninstall: remove /var/lib/appliance and /etc/appliance too
#
# Supports Raspberry Pi OS / Debian (Bookworm, Trixie), Ubuntu 24.04+, 64-bit (arm64, amd64).
# Every step checks first: a second run changes nothing and says so.
#
# What goes where: the checkout is copied to /opt/appliance/src (the service cannot read /home:
# ProtectHome=yes) and installed editable into /opt/appliance/venv (--system-site-packages, so apt's
# picamera2 and lgpio are visible); config /etc/appliance/config.toml; state and models /var/lib/appliance.
#
# For tests and packagers (environment):
#   APPLIANCE_ROOT=DIR       prefix every system path (/etc, /opt, /var/lib, /dev, /sys, ...) with DIR
#   APPLIANCE_PYTHON=PATH    interpreter for the venv (default /usr/bin/python3, the one apt's modules match)
#   APPLIANCE_PIP_ARGS="..." extra `pip install` arguments (e.g. --no-index --find-links DIR for a wheelhouse)
#   APPLIANCE_VENV_ARGS="..." extra `python -m venv` arguments (tests: --without-pip, pip comes via PYTHONPATH)
# Commands that change the system (apt-get, systemctl, useradd, usermod, userdel, udevadm, chown, curl,
# gpg) and the ones it reads (apt-cache, dpkg-query, dpkg, getent, lsusb, lspci, id, systemd-analyze) are
# looked up in PATH.
# Without a running systemd (a chroot, an image build, a plain container) the unit is installed, enabled
# and verified, but not started: it starts at the next boot.
set -euo pipefail

ROOT=${APPLIANCE_ROOT:-}
PYTHON=${APPLIANCE_PYTHON:-/usr/bin/python3}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SERVICE=appliance.service
SVC_USER=appliance
ETC_DIR=$ROOT/etc/appliance
CONFIG=$ETC_DIR/config.toml
OPT_DIR=$ROOT/opt/appliance
SRC_DIR=$OPT_DIR/src
VENV=$OPT_DIR/venv
STATE_DIR=$ROOT/var/lib/appliance
MODELS_DIR=$STATE_DIR/models
UNIT=$ROOT/etc/systemd/system/$SERVICE
BIN_LINK=$ROOT/usr/local/bin/appliance
CONSTRAINTS=$OPT_DIR/pip-constraints.txt
UDEV_RULE=$ROOT/etc/udev/rules.d/99-coral-edgetpu.rules
PKG_UDEV_RULES=("$ROOT"/lib/udev/rules.d/60-libedgetpu1-{std,max}.rules "$ROOT"/usr/lib/udev/rules.d/60-libedgetpu1-{std,max}.rules)
CORAL_LIST=$ROOT/etc/apt/sources.list.d/coral-edgetpu.list  # written by earlier versions; now removed
CORAL_KEYRING=/etc/apt/keyrings/coral-edgetpu.gpg
CORAL_REPO="deb [signed-by=$CORAL_KEYRING] https://packages.cloud.google.com/apt coral-edgetpu-stable main"
GROUPS_WANTED=(video gpio plugdev apex)
# What the copy of the checkout holds (the models manifest lives in models/, found beside the package).
SRC_PARTS=(pyproject.toml README.md LICENSE appliance models systemd docs/config.example.toml install.sh)

EDGETPU=0 MODELS_FROM="" DRY=0 UNINSTALL=0 PURGE=0 START=1 PICAMERA=0
CHANGES=0 NOT_STARTED=""

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf '%s\n' "$*"; }
die() {  # die PROBLEM FIX
    printf 'install.sh: %s\n' "$1" >&2
    [ -n "${2:-}" ] && printf '  fix: %s\n' "$2" >&2
    exit 1
}
ok() { say "ok: already $*"; }
# act DESCRIPTION CMD...: run a command that changes the system (or only say it under --dry-run)
act() {
    local what=$1
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY" = 1 ]; then
        say "would: $what"
        return 0
    fi
    say "doing: $what"
    "$@"
}
have() { command -v "$1" >/dev/null 2>&1; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --edgetpu) EDGETPU=1 ;;
            --models-from)
                [ $# -ge 2 ] || die "--models-from needs a folder" "--models-from /path/to/models"
                MODELS_FROM=$(cd "$2" 2>/dev/null && pwd) || die "--models-from: $2 is not a folder" \
                    "give the folder that holds the .tflite and label files"
                shift ;;
            --no-start) START=0 ;;
            --dry-run) DRY=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" "see the options above" ;;
        esac
        shift
    done
    if [ "$PURGE" = 1 ] && [ "$UNINSTALL" = 0 ]; then
        die "--purge only goes with --uninstall" "sudo ./install.sh --uninstall --purge"
    fi
}

# --- checks -------------------------------------------------------------------------------------------

check_root() {
    if [ "$(id -u)" != 0 ]; then
        [ "$DRY" = 1 ] && { say "note: not root: --dry-run only reads, but a real run needs sudo"; return; }
        die "this installer changes system files and must run as root" "sudo $0 $*"
    fi
}

os_field() {  # os_field KEY: a value from os-release, unquoted
    sed -n "s/^$1=//p" "$ROOT/etc/os-release" | head -n 1 | tr -d '"'"'"
}

check_os() {
    [ -r "$ROOT/etc/os-release" ] || die "cannot read /etc/os-release: unknown operating system" \
        "use Raspberry Pi OS, Debian or Ubuntu (64-bit), or install by hand (see README: Development)"
    local id like name
    id=$(os_field ID) like=$(os_field ID_LIKE) name=$(os_field PRETTY_NAME)
    case " $id $like " in
        *" debian "*|*" raspbian "*|*" ubuntu "*|*" mendel "*) ;;
        *) die "unsupported operating system: ${name:-$id} (this installer uses apt and systemd)" \
               "use Raspberry Pi OS (Bookworm/Trixie), Debian 12/13 or Ubuntu 24.04, 64-bit; elsewhere install by hand: python3 -m venv venv && venv/bin/pip install -e ." ;;
    esac
    local arch
    arch=$(dpkg --print-architecture 2>/dev/null || true)
    case "$arch" in
        arm64|amd64) ;;
        armhf|armel|i386) die "this is a 32-bit system ($arch): the TensorFlow Lite runtime has no 32-bit wheels" \
                              "flash the 64-bit Raspberry Pi OS (Raspberry Pi Imager: 'Raspberry Pi OS (64-bit)')" ;;
        *) say "note: unknown architecture '${arch:-?}': continuing" ;;
    esac
    say "ok: ${name:-$id} ($arch)"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        die "$PYTHON is missing or older than Python 3.11 (${name:-$id} ships $("$PYTHON" --version 2>&1 || echo none))" \
            "use an OS with Python 3.11+ (Raspberry Pi OS Bookworm or newer; the Coral Dev Board's Mendel ships 3.7: run the appliance on a Pi with a USB Accelerator instead), or APPLIANCE_PYTHON=/path/to/python3.11"
    fi
}

# --- apt ------------------------------------------------------------------------------------------------

pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
pkg_available() {
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1)
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

APT_UPDATED=0
apt_install() {  # apt_install PKG...: only the missing ones
    local missing=() pkg
    for pkg in "$@"; do
        if pkg_installed "$pkg"; then ok "installed: $pkg"; else missing+=("$pkg"); fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" = 0 ]; then
        act "apt-get update" apt-get update -qq
        APT_UPDATED=1
    fi
    act "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_packages() {
    local wanted=(python3-venv) pkg
    # a fresh image may have no package lists: then every package looks "not offered"
    if ! compgen -G "$ROOT/var/lib/apt/lists/*_Packages" >/dev/null; then
        act "apt-get update (no package lists yet)" apt-get update -qq
        APT_UPDATED=1
    fi
    for pkg in python3-picamera2 python3-lgpio; do  # Raspberry Pi OS has them; plain Debian does not
        if pkg_installed "$pkg" || pkg_available "$pkg"; then
            wanted+=("$pkg")
            [ "$pkg" = python3-picamera2 ] && PICAMERA=1
        else
            say "ok: $pkg is not offered by this OS (USB webcams and mock pins work without it)"
        fi
    done
    apt_install "${wanted[@]}"
}

# --- Edge TPU -------------------------------------------------------------------------------------------

coral_on_usb() {
    if have lsusb && lsusb 2>/dev/null | grep -Eiq 'ID (1a6e:089a|18d1:9302)'; then return 0; fi
    local dev
    for dev in "$ROOT"/sys/bus/usb/devices/*; do
        [ -r "$dev/idVendor" ] || continue
        case "$(cat "$dev/idVendor"):$(cat "$dev/idProduct" 2>/dev/null)" in
            1a6e:089a|18d1:9302) return 0 ;;
        esac
    done
    return 1
}
coral_on_pcie() { compgen -G "$ROOT/dev/apex_*" >/dev/null; }
coral_pcie_without_driver() { have lspci && lspci -nn 2>/dev/null | grep -iq '1ac1:089a' && ! coral_on_pcie; }

write_file() {  # write_file PATH MODE CONTENT: (re)write when the content differs
    local path=$1 mode=$2 content=$3
    if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
        ok "written: ${path#"$ROOT"}"
        return 1
    fi
    act "write ${path#"$ROOT"}" install -D -m "$mode" /dev/stdin "$path" <<<"$content"
}

# The pair: a libedgetpu .deb and a TFLite runtime wheel built from the same TensorFlow, pinned per
# platform in appliance/vision/edgetpu_runtime.toml with the public evidence for it. Coral's apt
# libedgetpu1-std 16.0 is built from TF 2.5 and crashes under runtimes newer than 2.11: no longer installed.
# Without a Coral nothing of this is installed and ai-edge-litert from PyPI stays the CPU runtime.
PAIRS_SCRIPT=appliance/vision/runtime_pairs.py
ETPU_CACHE=$OPT_DIR/edgetpu-runtime
ETPU_CONSTRAINTS=$OPT_DIR/edgetpu-constraints.txt
ETPU_SELECTED=0 ETPU_EXPLICIT=0

select_edgetpu_pair() {  # sets the ETPU_* variables for this OS, Python and architecture, or explains why not
    local pyver out problem fix
    pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if out=$("$PYTHON" "$CHECKOUT/$PAIRS_SCRIPT" --os-codename "$(os_field VERSION_CODENAME)" --python "$pyver" \
        --arch "$(dpkg --print-architecture 2>/dev/null || true)" 2>&1) && [[ "$out" == *ETPU_PLATFORM=* ]]; then
        eval "$out"
        return 0
    fi
    problem=$(sed -n 's/^runtime_pairs: //p' <<<"$out") fix=$(sed -n 's/^  fix: //p' <<<"$out")
    problem=${problem:-$PYTHON could not run $PAIRS_SCRIPT to choose the runtime pair${out:+: $out}}
    [ "$ETPU_EXPLICIT" = 1 ] && die "--edgetpu: $problem" "$fix"
    say "warn: a Coral is present, but $problem"
    [ -n "$fix" ] && say "  fix: $fix"
    say "ok: skipping the Edge TPU runtime: the appliance runs on the CPU (ai-edge-litert)"
    return 1
}

installed_version() {  # installed_version PKG: its version, empty when not installed
    dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}
cached() { printf '%s/%s' "$ETPU_CACHE" "${1##*/}"; }  # cached URL: where its download is kept
download() {  # download URL FILE: via FILE.part, so an interrupted download is never taken for a whole one
    mkdir -p "$(dirname "$2")"
    curl -fsSL --retry 3 -o "$2.part" "$1" && mv "$2.part" "$2"
}

fetch_asset() {  # fetch_asset URL SHA256: download once into the cache; check the sha256 when one is pinned
    local url=$1 want=$2 file got fresh=0
    file=$(cached "$url")
    if [ ! -f "$file" ]; then
        act "download $url" download "$url" "$file" \
            || die "could not download $url" "check the network and run again (the pair is pinned in $PAIRS_SCRIPT's manifest)"
        [ "$DRY" = 1 ] && return 0
        fresh=1
    fi
    got=$(sha256sum <"$file" | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$got" != "$want" ]; then
        rm -f "$file"
        die "sha256 mismatch for ${file##*/}: the manifest pins $want, the download is $got (removed it)" \
            "do not install it: the release asset changed or the download was altered; run again later, and if it persists report it (appliance/vision/edgetpu_runtime.toml)"
    elif [ -n "$want" ]; then
        say "ok: sha256 verified: ${file##*/}"
    elif [ "$fresh" = 1 ]; then
        say "note: no sha256 is published for ${file##*/}: not hash-checked (HTTPS only); it has sha256 $got"
    else
        ok "downloaded: ${file##*/} (sha256 $got; none is published to check it against)"
    fi
}

install_libedgetpu() {  # returns 0 when it (re)installed the .deb
    local current
    current=$(installed_version "$ETPU_DEB_PACKAGE")
    if [ -n "$current" ] && [[ "$current" == "$ETPU_DEB_VERSION"* ]]; then
        ok "installed: $ETPU_DEB_PACKAGE $current (built from TensorFlow $ETPU_TF_VERSION)"
        return 1
    fi
    act "install $ETPU_DEB_PACKAGE $ETPU_DEB_VERSION (built from TensorFlow $ETPU_TF_VERSION)${current:+ over $current}" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$(cached "$ETPU_DEB_URL")" \
        || die "apt-get could not install ${ETPU_DEB_URL##*/}" \
               "see apt's message above; run sudo apt-get -f install, then this installer again"
}

forget_coral_apt_repo() {  # earlier versions added Coral's apt repository for its libedgetpu 16.0 (TF 2.5)
    if [ -f "$CORAL_LIST" ] && [ "$(cat "$CORAL_LIST")" = "$CORAL_REPO" ]; then
        act "remove Coral's apt repository (its libedgetpu 16.0 is built from TF 2.5; a matched pair replaces it)" \
            rm -f "$CORAL_LIST" "$ROOT$CORAL_KEYRING"
    fi
}

install_edgetpu() {
    [ "$EDGETPU" = 1 ] && ETPU_EXPLICIT=1
    if [ "$EDGETPU" = 0 ]; then
        if coral_on_usb; then say "ok: Coral USB Accelerator found"; EDGETPU=1
        elif coral_on_pcie; then say "ok: PCIe/M.2 Coral found (/dev/apex_*)"; EDGETPU=1
        fi
    fi
    if coral_pcie_without_driver; then
        say "warn: a PCIe/M.2 Coral is present but /dev/apex_0 is missing: its kernel driver (gasket) is not loaded"
        say "  fix: install gasket-dkms following https://coral.ai/docs/m2/get-started/ and reboot"
        EDGETPU=1
    fi
    if [ "$EDGETPU" = 0 ]; then
        say "ok: no Coral found: skipping the Edge TPU runtime (plug one in and run again, or use --edgetpu)"
        return 0
    fi
    select_edgetpu_pair || return 0
    ETPU_SELECTED=1
    say "ok: Edge TPU runtime for $ETPU_PLATFORM: $ETPU_DEB_PACKAGE $ETPU_DEB_VERSION + $ETPU_RUNTIME $ETPU_RUNTIME_VERSION, both built from TensorFlow $ETPU_TF_VERSION"
    say "  why this pair ($ETPU_EVIDENCE_STRENGTH evidence): $ETPU_EVIDENCE"
    # both downloads are checked before anything is installed
    [[ "$(installed_version "$ETPU_DEB_PACKAGE")" == "$ETPU_DEB_VERSION"* ]] || fetch_asset "$ETPU_DEB_URL" "$ETPU_DEB_SHA256"
    runtime_installed || fetch_asset "$ETPU_WHEEL_URL" "$ETPU_WHEEL_SHA256"
    local changed=0 rule
    if install_libedgetpu; then changed=1; fi
    for rule in "${PKG_UDEV_RULES[@]}"; do
        if [ -f "$rule" ]; then
            say "ok: $ETPU_DEB_PACKAGE installed its udev rule (${rule#"$ROOT"})"
            if [ "$changed" = 1 ]; then
                act "apply udev rules to plugged-in devices" udevadm trigger --subsystem-match=usb
            fi
            return 0
        fi
    done
    if write_file "$UDEV_RULE" 0644 "$(cat "$CHECKOUT/systemd/99-coral-edgetpu.rules")"; then
        act "reload udev rules" udevadm control --reload-rules
        act "apply udev rules to plugged-in devices" udevadm trigger --subsystem-match=usb
    fi
}

ETPU_STAMP=$VENV/.appliance-edgetpu-runtime
runtime_installed() { [ -f "$ETPU_STAMP" ] && [ "$(cat "$ETPU_STAMP")" = "$ETPU_WHEEL_URL $ETPU_NUMPY_CONSTRAINT" ]; }

install_edgetpu_runtime() {  # the pair's runtime wheel goes into the venv, which exists only now
    [ "$ETPU_SELECTED" = 1 ] || return 0
    if runtime_installed; then
        ok "installed: $ETPU_RUNTIME $ETPU_RUNTIME_VERSION in the venv (built from TensorFlow $ETPU_TF_VERSION)"
        return 0
    fi
    [ -f "$(cached "$ETPU_WHEEL_URL")" ] || fetch_asset "$ETPU_WHEEL_URL" "$ETPU_WHEEL_SHA256"
    local pip_args=()
    read -ra pip_args <<<"${APPLIANCE_PIP_ARGS:-}"
    if [ -n "$ETPU_NUMPY_CONSTRAINT" ]; then
        write_file "$ETPU_CONSTRAINTS" 0644 "$ETPU_NUMPY_CONSTRAINT" || true
        pip_args+=(--constraint "$ETPU_CONSTRAINTS")
    fi
    act "pip install $ETPU_RUNTIME $ETPU_RUNTIME_VERSION (built from TensorFlow $ETPU_TF_VERSION) into the venv${ETPU_NUMPY_CONSTRAINT:+, $ETPU_NUMPY_CONSTRAINT}: ${ETPU_WHEEL_URL##*/}" \
        "$VENV/bin/python" -m pip install --quiet ${pip_args[@]+"${pip_args[@]}"} "$(cached "$ETPU_WHEEL_URL")" \
        || die "pip could not install ${ETPU_WHEEL_URL##*/} into ${VENV#"$ROOT"}" \
               "see pip's message above; check the network (its dependencies come from PyPI) and run this installer again"
    [ "$DRY" = 1 ] || printf '%s\n' "$ETPU_WHEEL_URL $ETPU_NUMPY_CONSTRAINT" >"$ETPU_STAMP"
    CODE_CHANGED=1
}

# --- user -----------------------------------------------------------------------------------------------

ensure_user() {
    if getent passwd "$SVC_USER" >/dev/null 2>&1; then ok "present: system user $SVC_USER"; else
        act "create system user $SVC_USER" useradd --system --user-group --home-dir /var/lib/appliance \
            --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
    fi
    local group line members
    for group in "${GROUPS_WANTED[@]}"; do
        line=$(getent group "$group" 2>/dev/null || true)
        [ -n "$line" ] || continue  # only groups this OS has
        members=$(cut -d: -f4 <<<"$line")
        if [[ ",$members," == *",$SVC_USER,"* ]]; then ok "in group $group: $SVC_USER"; else
            act "add $SVC_USER to group $group" usermod -a -G "$group" "$SVC_USER"
        fi
    done
}

# --- program --------------------------------------------------------------------------------------------

src_parts() {  # the parts of the checkout that exist
    local part
    for part in "${SRC_PARTS[@]}"; do
        if [ -e "$1/$part" ]; then printf '%s\n' "$part"; fi
    done
}

tree_digest() {  # one hash over the files of the copy (names and contents), build leftovers ignored
    local dir=$1
    [ -d "$dir" ] || { echo none; return; }
    (cd "$dir" && src_parts . | xargs -r -d '\n' find 2>/dev/null -type f \
        | grep -Ev '__pycache__|\.pyc$|\.egg-info' | LC_ALL=C sort | xargs -r -d '\n' sha256sum \
        | sha256sum | cut -d' ' -f1)
}

copy_source() {
    local parts=()
    mapfile -t parts < <(src_parts "$CHECKOUT")
    rm -rf "$SRC_DIR.new"
    mkdir -p "$SRC_DIR.new"
    tar -C "$CHECKOUT" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - "${parts[@]}" \
        | tar -C "$SRC_DIR.new" -xf -
    rm -rf "$SRC_DIR"
    mv "$SRC_DIR.new" "$SRC_DIR"
}

CODE_CHANGED=0
install_program() {
    if [ "$CHECKOUT" = "$SRC_DIR" ]; then ok "running from $SRC_DIR"
    elif [ "$(tree_digest "$CHECKOUT")" = "$(tree_digest "$SRC_DIR")" ]; then
        ok "up to date: ${SRC_DIR#"$ROOT"} (copy of $CHECKOUT)"
    else
        act "copy $CHECKOUT to ${SRC_DIR#"$ROOT"}" copy_source
        CODE_CHANGED=1
    fi
    if [ -x "$VENV/bin/python" ] && grep -q '^include-system-site-packages = true' "$VENV/pyvenv.cfg"; then
        ok "present: venv ${VENV#"$ROOT"}"
    else
        local venv_args=()
        read -ra venv_args <<<"${APPLIANCE_VENV_ARGS:-}"
        act "create venv ${VENV#"$ROOT"} (--system-site-packages)" \
            "$PYTHON" -m venv --clear --system-site-packages ${venv_args[@]+"${venv_args[@]}"} "$VENV"
    fi
    local stamp="$VENV/.appliance-installed" want pip_args=() why=""
    read -ra pip_args <<<"${APPLIANCE_PIP_ARGS:-}"
    if needs_numpy1; then
        write_file "$CONSTRAINTS" 0644 "numpy<2" || true
        pip_args+=(--constraint "$CONSTRAINTS")
        why=", numpy<2 to match apt's picamera2 modules"
    fi
    want="$(sha256sum <"$CHECKOUT/pyproject.toml" | cut -d' ' -f1) ${SRC_DIR#"$ROOT"} ${pip_args[*]}"
    if [ -x "$VENV/bin/appliance" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        ok "installed: the appliance package in the venv"
    else
        act "pip install -e ${SRC_DIR#"$ROOT"} (dependencies from PyPI$why)" \
            "$VENV/bin/python" -m pip install --quiet ${pip_args[@]+"${pip_args[@]}"} -e "$SRC_DIR"
        [ "$DRY" = 1 ] || printf '%s\n' "$want" >"$stamp"
        CODE_CHANGED=1
    fi
    if [ "$(readlink "$BIN_LINK" 2>/dev/null || true)" = /opt/appliance/venv/bin/appliance ]; then
        ok "linked: /usr/local/bin/appliance"
    else
        act "link /usr/local/bin/appliance to the venv's command" link_command
    fi
}

link_command() {
    mkdir -p "$(dirname "$BIN_LINK")"
    ln -sfn /opt/appliance/venv/bin/appliance "$BIN_LINK"
}

# Raspberry Pi OS Bookworm's picamera2 stack (simplejpeg) is built for numpy 1.x: the venv, which sees
# it through --system-site-packages, must not pull numpy 2 over it ("numpy.dtype size changed").
needs_numpy1() {
    [ "$PICAMERA" = 1 ] || return 1
    local version
    version=$("$PYTHON" -I -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
    [[ "$version" == 1.* ]]
}

write_config() {
    if [ -f "$CONFIG" ]; then ok "present: ${CONFIG#"$ROOT"} (kept as is)"; return; fi
    act "write the default ${CONFIG#"$ROOT"}" install -D -m 0640 "$CHECKOUT/docs/config.example.toml" "$CONFIG"
    act "let $SVC_USER read ${CONFIG#"$ROOT"}" chown "root:$SVC_USER" "$CONFIG"
}

fetch_models() {
    local from=() out
    [ -n "$MODELS_FROM" ] && from=(--from "$MODELS_FROM")
    if [ ! -d "$STATE_DIR" ]; then
        act "create ${STATE_DIR#"$ROOT"}" install -d -m 0750 "$STATE_DIR"
    fi
    if [ "$DRY" = 1 ]; then
        if [ -x "$VENV/bin/appliance" ] && [ -d "$MODELS_DIR" ] \
            && "$VENV/bin/appliance" models verify --models-dir "$MODELS_DIR" >/dev/null 2>&1; then
            ok "present: models in ${MODELS_DIR#"$ROOT"} (hashes verified; a real run also fetches missing ones)"
        else
            act "fetch and verify the models into ${MODELS_DIR#"$ROOT"}" true
        fi
        return
    fi
    # fetch verifies what is there and copies or downloads only what is missing: run it, then tell
    if ! out=$("$VENV/bin/appliance" models fetch --config "$CONFIG" --models-dir "$MODELS_DIR" \
        ${from[@]+"${from[@]}"} 2>&1); then
        printf '%s\n' "$out" >&2
        die "the models could not be fetched" \
            "check the network, or copy them from another machine: sudo ./install.sh --models-from DIR"
    fi
    if grep -Eq 'copied from|downloaded from' <<<"$out"; then
        CHANGES=$((CHANGES + 1))
        say "doing: fetch models into ${MODELS_DIR#"$ROOT"} (hash-checked)"
        grep -E 'copied from|downloaded from' <<<"$out" | sed 's/^/  /'
        act "give $SVC_USER its state folder" chown -R "$SVC_USER:$SVC_USER" "$STATE_DIR"
    else
        ok "present: models in ${MODELS_DIR#"$ROOT"} (hashes verified)"
    fi
}

install_unit() {
    local changed=0
    if [ -f "$UNIT" ] && cmp -s "$CHECKOUT/systemd/$SERVICE" "$UNIT"; then ok "installed: ${UNIT#"$ROOT"}"; else
        act "install ${UNIT#"$ROOT"}" install -D -m 0644 "$CHECKOUT/systemd/$SERVICE" "$UNIT"
        daemon_reload
        changed=1
    fi
    if [ "$(systemctl is-enabled "$SERVICE" 2>/dev/null || true)" = enabled ]; then ok "enabled: $SERVICE"; else
        act "enable $SERVICE (starts at boot)" systemctl enable "$SERVICE"
    fi
    if systemd_offline; then
        verify_unit
        NOT_STARTED="systemd is not running here (a chroot or a container)"
        say "ok: not starting $SERVICE: $NOT_STARTED; it starts at boot"
        return
    fi
    [ "$START" = 1 ] || { NOT_STARTED="--no-start"; say "ok: not starting $SERVICE (--no-start)"; return; }
    local why=""
    [ $((CHANGES > 0)) = 1 ] && why="something changed"
    if [ "$(systemctl is-active "$SERVICE" 2>/dev/null || true)" = active ]; then
        if [ -n "$why" ] || [ "$changed" = 1 ] || [ "$CODE_CHANGED" = 1 ]; then
            act "restart $SERVICE ($why)" systemctl restart "$SERVICE" || start_failed
        else
            ok "running: $SERVICE"
        fi
    else
        act "start $SERVICE" systemctl start "$SERVICE" || start_failed
    fi
}

# systemctl enable only writes links, so it works without a running systemd; start does not (in a chroot
# systemctl ignores it and exits 0). `systemctl is-system-running` says "offline" there.
systemd_offline() { [ "$(systemctl is-system-running 2>/dev/null || true)" = offline ]; }

daemon_reload() {  # without a running systemd there is nothing to reload (and systemctl would fail)
    if systemd_offline; then say "ok: no daemon-reload needed: systemd is not running here"; return; fi
    act "systemctl daemon-reload" systemctl daemon-reload
}

verify_unit() {  # with no systemd to start it now, check what the next boot will find
    [ "$DRY" = 1 ] && return 0
    [ "$(systemctl is-enabled "$SERVICE" 2>/dev/null || true)" = enabled ] \
        || die "$SERVICE is not enabled, though systemctl enable ran" "sudo systemctl enable $SERVICE"
    if ! have systemd-analyze; then
        say "ok: $SERVICE is enabled (systemd-analyze is missing: the unit file was not verified)"
        return
    fi
    local out
    if ! out=$(systemd-analyze verify "$UNIT" 2>&1); then
        printf '%s\n' "$out" >&2
        die "systemd-analyze verify finds problems in ${UNIT#"$ROOT"} (above)" \
            "reinstall from a clean checkout: git checkout systemd/ && sudo ./install.sh"
    fi
    say "ok: $SERVICE is enabled and its unit verified (systemd-analyze verify)"
}

start_failed() {
    die "$SERVICE did not start" "see why: journalctl -u appliance -e --no-pager; and run: sudo -u $SVC_USER appliance doctor"
}

# --- uninstall ------------------------------------------------------------------------------------------

uninstall() {
    if [ -f "$UNIT" ]; then
        if systemd_offline; then act "disable $SERVICE" systemctl disable "$SERVICE"
        else act "stop and disable $SERVICE" systemctl disable --now "$SERVICE"
        fi
        act "remove ${UNIT#"$ROOT"}" rm -f "$UNIT"
        daemon_reload
    else
        ok "removed: ${UNIT#"$ROOT"}"
    fi
    if [ -L "$BIN_LINK" ]; then act "remove /usr/local/bin/appliance" rm -f "$BIN_LINK"; fi
    if [ -e "$OPT_DIR" ]; then act "remove ${OPT_DIR#"$ROOT"} (program and venv)" rm -rf "$OPT_DIR"; else
        ok "removed: ${OPT_DIR#"$ROOT"}"
    fi
    if getent passwd "$SVC_USER" >/dev/null 2>&1; then act "remove system user $SVC_USER" userdel "$SVC_USER"; else
        ok "removed: system user $SVC_USER"
    fi
    if [ -f "$UDEV_RULE" ]; then
        act "remove ${UDEV_RULE#"$ROOT"}" rm -f "$UDEV_RULE"
        act "reload udev rules" udevadm control --reload-rules
    fi
    local dir
    for dir in "$STATE_DIR" "$ETC_DIR"; do
        if [ "$PURGE" = 1 ]; then
            if [ -e "$dir" ]; then act "remove ${dir#"$ROOT"} (--purge)" rm -rf "$dir"; else ok "removed: ${dir#"$ROOT"}"; fi
        elif [ -e "$dir" ]; then
            say "kept: ${dir#"$ROOT"} (taught classes, models, config; --uninstall --purge removes it)"
        fi
    done
    say "kept: apt packages (python3-*, the libedgetpu .deb)"
}

main() {
    parse_args "$@"
    check_root "$@"
    check_os
    if [ "$UNINSTALL" = 1 ]; then
        uninstall
    else
        forget_coral_apt_repo
        install_packages
        install_edgetpu
        ensure_user
        install_program
        install_edgetpu_runtime
        write_config
        fetch_models
        install_unit
    fi
    if [ "$CHANGES" = 0 ]; then
        say "nothing to change"
    elif [ "$DRY" = 1 ]; then
        say "dry run: $CHANGES action(s) would be taken; nothing was changed"
    elif [ "$UNINSTALL" = 1 ]; then
        say "done: the appliance is uninstalled"
    elif [ -n "$NOT_STARTED" ]; then
        say "done: the appliance is installed and enabled, not started ($NOT_STARTED): it starts at boot"
        say "  or now: sudo systemctl start $SERVICE; check it with: sudo -u $SVC_USER appliance doctor"
    else
        say "done: the appliance is installed and running: http://$(hostname 2>/dev/null || echo localhost).local:8080"
        say "  check it with: sudo -u $SVC_USER appliance doctor"
    fi
}

main "$@"
