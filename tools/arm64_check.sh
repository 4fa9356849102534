#!/usr/bin/env bash
# Install the appliance for real in arm64 Debian roots (qemu user emulation) and check that it works:
#   tools/arm64_check.sh [bookworm|trixie|all]        (what `./dev.sh arm64-check` runs; default all)
#
# Needs root on an amd64 Debian/Ubuntu machine; elsewhere it says why and exits 77 (skipped).
# Exit 0: every step passed; 1: a step failed (its log is printed); 2: bad arguments.
#
# Per release: a cached arm64 minbase root (debootstrap; built once, reused), a throwaway overlay on it,
# the checkout (tracked + untracked files, not .venv) and the models folder copied in, `install.sh` run
# for real through chroot (apt from the release's own archive, pip from PyPI), run twice (the second must
# change nothing), then, as the service user: doctor, classify, detect, teach, classify --store,
# run --check-config, and `run` with the demo camera for a while with /healthz and /api/status polled
# from inside the root; where apt's numpy is 1.x (Bookworm), install.sh's numpy<2 set on its own.
# One line per step: ok/fail, seconds, what was seen. Needs the network: the Debian archive and PyPI.
# See docs/arm64-check.md.
#
# Environment:
#   APPLIANCE_MODELS_FROM=DIR      models to install from (required; dev.sh sets ../shared/models)
#   APPLIANCE_IMAGES_FROM=DIR      photos (default: the images/ folder beside APPLIANCE_MODELS_FROM)
#   APPLIANCE_ARM64_CACHE=DIR      cached roots, apt and pip downloads (default /var/cache/appliance-arm64)
#   APPLIANCE_ARM64_MIRROR=URL     Debian mirror (default http://deb.debian.org/debian)
#   APPLIANCE_ARM64_RUN_SECONDS=N  how long `appliance run` is watched (default 30)
#   APPLIANCE_ARM64_REBUILD=1      rebuild the cached roots
# shellcheck disable=SC2317  # the step functions are called by name, from check_release's list
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${APPLIANCE_ARM64_CACHE:-/var/cache/appliance-arm64}
MIRROR=${APPLIANCE_ARM64_MIRROR:-http://deb.debian.org/debian}
RUN_SECONDS=${APPLIANCE_ARM64_RUN_SECONDS:-30}
# What the cached root holds beyond minbase: what a Raspberry Pi OS Lite image has that install.sh uses.
BASE_PACKAGES=python3,ca-certificates,systemd
BASE_SPEC="debootstrap --arch=arm64 --variant=minbase --include=$BASE_PACKAGES MIRROR=$MIRROR v1"
RELEASES=(bookworm trixie)
CHECKOUT_IN=/root/appliance         # where the checkout lands in the root (as after a git clone)
MODELS_IN=/media/models             # the models folder, as from a USB stick
IMAGES_IN=/media/images
SVC_USER=appliance
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

FAILED=0
ROOT=""        # the throwaway root of the release being checked

say() { printf '%s\n' "$*"; }
skip() { say "arm64-check: skipped: $1"; [ -n "${2:-}" ] && say "  fix: $2"; exit 77; }
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

# --- the host -------------------------------------------------------------------------------------------

check_host() {
    [ "$(uname -s)" = Linux ] || skip "this needs Linux (qemu-user + binfmt_misc + chroot), not $(uname -s)"
    [ "$(id -u)" = 0 ] || skip "this needs root (debootstrap, mount, chroot)" "sudo ./dev.sh arm64-check"
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
        skip "this needs a Debian or Ubuntu host (apt-get, dpkg)"
    fi
    local arch
    arch=$(dpkg --print-architecture)
    [ "$arch" = amd64 ] || skip "this needs an amd64 host (this one is $arch): it emulates arm64 with qemu"
    local missing=() pkg
    for pkg in qemu-user-static binfmt-support debootstrap; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "arm64-check: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || skip "cannot mount binfmt_misc (an unprivileged container?)" "run on a VM or a privileged container"
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
        || skip "the qemu-aarch64 binfmt handler is not enabled" "update-binfmts --enable qemu-aarch64"
    if [ -z "${APPLIANCE_MODELS_FROM:-}" ] || [ ! -d "$APPLIANCE_MODELS_FROM" ]; then
        skip "APPLIANCE_MODELS_FROM is not a folder of models (${APPLIANCE_MODELS_FROM:-unset})" \
            "APPLIANCE_MODELS_FROM=/path/to/models ./dev.sh arm64-check (dev.sh uses ../shared/models)"
    fi
    MODELS_FROM=$(cd "$APPLIANCE_MODELS_FROM" && pwd)
    IMAGES_FROM=${APPLIANCE_IMAGES_FROM:-$(dirname "$MODELS_FROM")/images}
    if [ ! -f "$IMAGES_FROM/parrot.jpg" ] || [ ! -d "$IMAGES_FROM/imprinting" ]; then
        skip "no photos in $IMAGES_FROM (parrot.jpg, imprinting/)" "APPLIANCE_IMAGES_FROM=/path/to/images"
    fi
}

# --- steps ----------------------------------------------------------------------------------------------

# step RELEASE NAME FUNCTION [ARGS...]: run FUNCTION (in a subshell: it sets no variables) with its output
# in a log; print one line; STEP_OK=1 when it passed. FUNCTION may write a short detail with `detail`.
# A failure prints the log's tail. Call it as a plain command (not after && or ||, not in an `if`):
# there bash ignores `set -e` inside everything it runs, and a failing command would not stop FUNCTION.
STEP_OK=0
step() {
    local release=$1 name=$2 start status log
    shift 2
    log="$LOGS/$release-$(printf '%02d' "$STEP_NO")-${name// /-}.log"
    STEP_NO=$((STEP_NO + 1))
    DETAIL="$LOGS/.detail"
    : >"$DETAIL"
    start=$(now)
    # a background subshell, not an `if` condition: there `set -e` would be ignored inside FUNCTION
    ("$@") >"$log" 2>&1 &
    if wait "$!"; then status=ok STEP_OK=1; else status=fail STEP_OK=0; fi
    printf '%-4s  %-9s %-22s %7s s  %s\n' "$status" "$release" "$name" "$(since "$start")" \
        "$(tr '\n' ' ' <"$DETAIL")"
    if [ "$status" = fail ]; then
        tail -n 25 "$log" | sed 's/^/      | /'
        say "      (whole log: $log)"
        FAILED=1
    fi
}
detail() { printf '%s\n' "$*" >>"$DETAIL"; }
expect() {  # expect CONDITION-TEXT: fail the step, saying what was expected
    printf 'expected: %s\n' "$*"
    detail "expected $*"
    return 1
}

# in_root CMD...: run in the arm64 root as root, with a clean environment
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root PATH="$PATH_IN" LANG=C.UTF-8 TERM=dumb "$@"
}
# as_user CMD...: the same, as the service user with its groups (what the service sees, minus systemd)
as_user() {
    chroot "$ROOT" /usr/bin/setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups \
        /usr/bin/env -i HOME=/var/lib/appliance PATH="$PATH_IN" LANG=C.UTF-8 TERM=dumb "$@"
}

# json EXPR < JSON: evaluate a Python expression over the parsed document `d` on the host (prints it)
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval("(" + sys.argv[1] + ")"))' "$1"; }

# --- the root -------------------------------------------------------------------------------------------

base_root() {  # a cached minbase arm64 root for $RELEASE, built once
    local base="$CACHE/$RELEASE/base"
    if [ "${APPLIANCE_ARM64_REBUILD:-0}" = 1 ]; then rm -rf "$base" "$base.spec"; fi
    if [ -d "$base" ] && [ "$(cat "$base.spec" 2>/dev/null)" = "$BASE_SPEC" ]; then
        detail "cached $(du -sh "$base" 2>/dev/null | cut -f1) root from $(date -r "$base.spec" +%F)"
        return 0
    fi
    rm -rf "$base" "$base.tmp"
    mkdir -p "$CACHE/$RELEASE"
    debootstrap --arch=arm64 --variant=minbase --include="$BASE_PACKAGES" "$RELEASE" "$base.tmp" "$MIRROR"
    # the release's own archive with its updates and security fixes, as an installed system has
    {
        echo "deb $MIRROR $RELEASE main"
        echo "deb $MIRROR $RELEASE-updates main"
        echo "deb http://security.debian.org/debian-security $RELEASE-security main"
    } >"$base.tmp/etc/apt/sources.list"
    rm -rf "$base.tmp/var/cache/apt/archives/"*.deb
    mv "$base.tmp" "$base"
    printf '%s\n' "$BASE_SPEC" >"$base.spec"
    detail "built with debootstrap ($BASE_PACKAGES)"
}

mount_at() {  # mount_at TARGET MOUNT-ARGS...
    mkdir -p "$1"
    local target=$1
    shift
    mount "$@" "$target"
}

# release_root: stop what still runs inside the root (started by these steps), then unmount all under it
release_root() {
    [ -n "$ROOT" ] || return 0
    local pid pids=() mounts=() m
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/root" 2>/dev/null)" = "$ROOT" ] && pids+=("${pid#/proc/}")
    done
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        sleep 3
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    mapfile -t mounts < <(awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts \
        | sort -r)
    for m in "${mounts[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

# A throwaway overlay over the cached root, with /proc, a bare /dev and the download caches. No /sys:
# the host's describes its x86 CPUs, and the TFLite runtime's CPU detection (cpuinfo, for XNNPACK) reading
# that under emulation crashes with SIGSEGV; a Pi's /sys describes its own arm64 cores.
work_root() {
    local run="$CACHE/$RELEASE/run"
    release_root  # a run that was killed may have left its mounts: never delete through them
    rm -rf --one-file-system "$run"
    mkdir -p "$run/upper" "$run/work" "$ROOT" "$CACHE/$RELEASE/apt-archives/partial" "$CACHE/$RELEASE/pip-cache"
    mount_at "$ROOT" -t overlay overlay \
        -o "lowerdir=$CACHE/$RELEASE/base,upperdir=$run/upper,workdir=$run/work"
    mount_at "$ROOT/proc" -t proc proc
    # a bare /dev: no camera, no Edge TPU, no GPIO chip of the host's leaks in
    mount_at "$ROOT/dev" -t tmpfs -o mode=0755,nosuid devtmp
    local node
    for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name major minor <<<"$node"
        mknod -m 0666 "$ROOT/dev/$name" c "$major" "$minor"
    done
    ln -s /proc/self/fd "$ROOT/dev/fd"
    ln -s pts/ptmx "$ROOT/dev/ptmx"
    ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
    ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
    ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
    mount_at "$ROOT/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev shm
    mount_at "$ROOT/dev/pts" -t devpts -o newinstance,ptmxmode=0666 devpts
    mount_at "$ROOT/var/cache/apt/archives" --bind "$CACHE/$RELEASE/apt-archives"
    mount_at "$ROOT/root/.cache/pip" --bind "$CACHE/$RELEASE/pip-cache"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    trust_host_cas
    [ "$(in_root uname -m)" = aarch64 ] || { expect "uname -m = aarch64 inside the root"; return 1; }
    # shellcheck disable=SC1091  # the root's os-release
    detail "$(. "$ROOT/etc/os-release" && echo "$PRETTY_NAME"), $(in_root uname -m)," \
        "$(in_root python3 --version)"
}

# The CAs added to this host beyond its distribution's (a TLS proxy's), so pip reaches PyPI from the root
# as it does from the host. They go to /usr/local/share/ca-certificates (an apt trigger that rebuilds the
# bundle keeps them) and are appended to the bundle here, as update-ca-certificates would: running it under
# emulation takes minutes.
trust_host_cas() {
    local host_bundle=/etc/ssl/certs/ca-certificates.crt added
    [ -r "$host_bundle" ] || return 0
    added=$(python3 - "$host_bundle" "$ROOT/etc/ssl/certs/ca-certificates.crt" \
        "$ROOT/usr/local/share/ca-certificates" <<'EOF'
import glob, os, re, sys
def certs(path):
    text = open(path).read() if os.path.exists(path) else ""
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
# what the root has, and what the host's own ca-certificates package brought: neither is copied
known = set(certs(sys.argv[2]))
for shipped in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True):
    known.update(certs(shipped))
extra = [c for c in certs(sys.argv[1]) if c not in known]
os.makedirs(sys.argv[3], exist_ok=True)
for n, cert in enumerate(extra):
    with open(os.path.join(sys.argv[3], f"host-ca-{n}.crt"), "w") as f:
        f.write(cert + "\n")
    with open(sys.argv[2], "a") as f:
        f.write(cert + "\n")
print(len(extra))
EOF
)
    if [ "$added" != 0 ]; then detail "trusts $added CA(s) added to the host,"; fi
}

copy_in() {  # the checkout as a clone would have it (tracked + untracked, not ignored), models, photos
    mkdir -p "$ROOT$CHECKOUT_IN" "$ROOT$MODELS_IN" "$ROOT$IMAGES_IN"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" ls-files -z --cached --others --exclude-standard \
            | (cd "$REPO" && tar --null --ignore-failed-read -T - -cf -) | tar -C "$ROOT$CHECKOUT_IN" -xf -
        detail "checkout at $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo '+changes'),"
    else
        tar -C "$REPO" --exclude=.venv --exclude=__pycache__ --exclude='*.egg-info' -cf - . \
            | tar -C "$ROOT$CHECKOUT_IN" -xf -
        detail "checkout (not a git clone),"
    fi
    cp -a "$MODELS_FROM/." "$ROOT$MODELS_IN/"
    cp -a "$IMAGES_FROM/." "$ROOT$IMAGES_IN/"
    detail "$(find "$ROOT$MODELS_IN" -type f | wc -l) model files, $(find "$ROOT$IMAGES_IN" -type f | wc -l) photos"
}

# --- install --------------------------------------------------------------------------------------------

install_first() {
    in_root bash "$CHECKOUT_IN/install.sh" --models-from "$MODELS_IN" | tee "$LOGS/$RELEASE-install.out"
    local out="$LOGS/$RELEASE-install.out"
    grep -q '^done: the appliance is installed' "$out" || { expect "a 'done: the appliance is installed' line"; return 1; }
    grep -q 'systemd is not running here' "$out" || { expect "install.sh to say systemd is not running"; return 1; }
    if grep -q "numpy<2" "$out"; then detail "numpy<2 pinned;"; fi
    detail "$(grep -c '^doing:' "$out") actions; unit installed, enabled, not started (no systemd)"
}

install_again() {
    in_root bash "$CHECKOUT_IN/install.sh" --models-from "$MODELS_IN" | tee "$LOGS/$RELEASE-install2.out"
    [ "$(tail -n 1 "$LOGS/$RELEASE-install2.out")" = "nothing to change" ] \
        || { expect "a second run to end with 'nothing to change'"; return 1; }
    detail "nothing to change"
}

unit_state() {
    local enabled
    enabled=$(in_root systemctl is-enabled appliance.service || true)
    [ "$enabled" = enabled ] || { expect "systemctl is-enabled = enabled, not '$enabled'"; return 1; }
    [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/appliance.service" ] \
        || { expect "the multi-user.target.wants link"; return 1; }
    in_root systemd-analyze verify /etc/systemd/system/appliance.service
    detail "enabled; systemd-analyze verify clean"
}

versions() {
    local report
    report=$(in_root /opt/appliance/venv/bin/python - <<'EOF'
import importlib.metadata as md, platform, sys
def v(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "-"
print(f"python {platform.python_version()} {platform.machine()}, ai-edge-litert {v('ai-edge-litert')}, "
      f"numpy {v('numpy')}, opencv-python-headless {v('opencv-python-headless')}")
EOF
)
    detail "$report"
    printf '%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$RELEASE" "$report" \
        "$(tr '\n' ' ' <"$LOGS/.pin")" >>"$CACHE/results.tsv"
}

# --- the appliance, as its service user -----------------------------------------------------------------

doctor() {
    local out
    out=$(as_user appliance doctor --json || true)  # exit 1: the camera check fails here, as expected
    printf '%s\n' "$out"
    # no camera, no Edge TPU, no GPIO here; systemd is not running, so the service state is unknown
    local verdict
    verdict=$(json '"; ".join(sorted(
        c["name"] + " " + c["status"] for c in d["checks"]
        if (c["name"] in ("camera", "edge tpu", "gpio")) == (c["status"] == "ok")
        and not (c["name"] == "service" and c["status"] == "warn"))) or "as expected"' <<<"$out")
    [ "$verdict" = "as expected" ] || { expect "camera/edge tpu/gpio not ok, the rest ok; got: $verdict"; return 1; }
    detail "$(json '", ".join(c["name"] + " " + c["status"] for c in d["checks"] if c["status"] != "ok")' \
        <<<"$out");" \
        "$(json 'sum(c["status"] == "ok" for c in d["checks"])' <<<"$out") ok"
}

classify() {
    local out got
    out=$(as_user appliance classify --json "$IMAGES_IN/parrot.jpg" "$IMAGES_IN/cat.bmp" "$IMAGES_IN/bird.bmp")
    printf '%s\n' "$out"
    got=$(json '" / ".join(r["classes"][0]["label"] + " " + format(r["classes"][0]["score"], ".2f") for r in d)' <<<"$out")
    json 'd[0]["classes"][0]["label"] == "macaw" and d[2]["classes"][0]["label"] == "chickadee"
          and d[1]["classes"][0]["label"] in ("tabby, tabby cat", "tiger cat", "Egyptian cat")' <<<"$out" \
        | grep -qx True || { expect "macaw / a cat / chickadee, got $got"; return 1; }
    detail "$got"
}

detect() {
    local out got
    out=$(as_user appliance detect --json "$IMAGES_IN/kite_and_cold.jpg" "$IMAGES_IN/cat.bmp")
    printf '%s\n' "$out"
    got=$(json '"; ".join(", ".join(o["label"] for o in r["objects"]) for r in d)' <<<"$out")
    json '[o["label"] for o in d[0]["objects"]].count("kite") >= 2 and "person" in [o["label"] for o in d[0]["objects"]]
          and d[1]["objects"][0]["label"] == "cat"' <<<"$out" \
        | grep -qx True || { expect "kites and people, then a cat; got $got"; return 1; }
    detail "$got"
}

STORE=/var/lib/appliance/classes.sqlite  # the service's own store: `run` must then show 3 classes
teach() {
    local prefix label photos
    for pair in cat:cat dog:dog "hotdog:hot dog"; do
        prefix=${pair%%:*} label=${pair#*:}
        mapfile -t photos < <(cd "$ROOT$IMAGES_IN/imprinting" && ls "$prefix"_train_*)
        as_user appliance teach --store "$STORE" "$label" "${photos[@]/#/$IMAGES_IN/imprinting/}"
    done
    detail "$(as_user appliance classes --store "$STORE" | tr -s ' ' | paste -sd ';')"
}

classify_store() {
    local out got
    out=$(as_user appliance classify --store "$STORE" --json "$IMAGES_IN/imprinting/cat_test_0.bmp" \
        "$IMAGES_IN/imprinting/dog_test_0.bmp" "$IMAGES_IN/imprinting/hotdog_test_0.bmp")
    printf '%s\n' "$out"
    got=$(json '", ".join(r["classes"][0]["label"] for r in d)' <<<"$out")
    [ "$got" = "cat, dog, hot dog" ] || { expect "cat, dog, hot dog; got $got"; return 1; }
    detail "$got"
}

demo_config() {  # the installed config, with the demo camera, mock pins and the page on 127.0.0.1:PORT
    sed -i -e 's/^source = "picamera"/source = "demo"/' -e 's/^pin_factory = "auto"/pin_factory = "mock"/' \
        -e 's/^host = "0.0.0.0"/host = "127.0.0.1"/' -e "s/^port = 8080/port = $PORT/" \
        "$ROOT/etc/appliance/config.toml"
    grep -E '^(source|pin_factory|host|port) ' "$ROOT/etc/appliance/config.toml"
}

check_config() {
    as_user appliance run --check-config
    detail "demo camera, mock pins, page on 127.0.0.1:$PORT"
}

http_get() {  # http_get PATH: status code and body of a GET to the appliance, from inside the root
    in_root python3 -c '
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=15) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError as e:
    print(0, e)
' "http://127.0.0.1:$PORT$1"
}

run_demo() {
    local start up="" answer polls=0 out="$LOGS/$RELEASE-run.out"
    # exec: $! is then the appliance itself (chroot, setpriv and env exec too), which SIGTERM must reach
    (exec chroot "$ROOT" /usr/bin/setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups \
        /usr/bin/env -i HOME=/var/lib/appliance PATH="$PATH_IN" LANG=C.UTF-8 TERM=dumb appliance run) \
        >"$out" 2>&1 &
    RUN_PID=$!
    trap 'kill -KILL "$RUN_PID" 2>/dev/null || true' EXIT
    start=$(now)
    for _ in $(seq 1 120); do  # starting under emulation takes a while: up to 4 minutes
        kill -0 "$RUN_PID" 2>/dev/null || { cat "$out"; expect "appliance run to keep running"; return 1; }
        answer=$(http_get /healthz)
        if [[ "$answer" == "200 "* ]]; then up=$(since "$start"); break; fi
        sleep 2
    done
    [ -n "$up" ] || { cat "$out"; expect "/healthz to answer 200 within 4 minutes (last: $answer)"; return 1; }
    echo "healthz after $up s: $answer"
    local until
    until=$(( ${EPOCHREALTIME%.*} + RUN_SECONDS ))
    while [ "${EPOCHREALTIME%.*}" -lt "$until" ]; do
        answer=$(http_get /healthz)
        echo "$answer"
        [[ "$answer" == "200 "* ]] || { cat "$out"; expect "/healthz 200 all along, got $answer"; return 1; }
        polls=$((polls + 1))
        sleep 3
    done
    answer=$(http_get /api/status)
    echo "$answer"
    [[ "$answer" == "200 "* ]] || { expect "/api/status 200, got $answer"; return 1; }
    local status=${answer#200 }
    json 'd["classes"] == 3 and d["frames_captured"] > 0 and d["inferences"] > 0 and d["backend"] == "cpu"' \
        <<<"$status" | grep -qx True \
        || { expect "3 classes, frames and inferences on the cpu in /api/status"; return 1; }
    kill -TERM "$RUN_PID"
    local code=0
    wait "$RUN_PID" || code=$?
    cat "$out"
    [ "$code" = 0 ] || { expect "exit 0 on SIGTERM, got $code"; return 1; }
    detail "up in $up s; $polls x /healthz 200 over ${RUN_SECONDS} s; /api/status:" \
        "$(json '"{} frames, {} inferences in {} s, {:.0f} ms/inference, {} classes".format(d["frames_captured"],
            d["inferences"], d["uptime_s"], d["inference_ms"], d["classes"])' <<<"$status");" \
        "SIGTERM -> exit 0"
}

# --- the Bookworm numpy pin -----------------------------------------------------------------------------

# install.sh pins numpy<2 only where apt's picamera2 (Raspberry Pi OS) sees a numpy 1.x; plain Debian has
# no picamera2, so the pin did not apply above. Check the pinned set on its own: with apt's numpy in a
# --system-site-packages venv and install.sh's constraint, do the arm64 wheels install and classify?
pinned_set() {
    local apt_numpy
    apt_numpy=$(in_root apt-cache policy python3-numpy | sed -n 's/^ *Candidate: *//p')
    apt_numpy=${apt_numpy#*:}  # the epoch
    echo "apt offers python3-numpy $apt_numpy"
    if [[ "$apt_numpy" != 1.* ]]; then
        printf 'apt numpy %s: no pin\n' "${apt_numpy%%[+-]*}" >"$LOGS/.pin"
        detail "apt's numpy is ${apt_numpy:-none}: install.sh pins nothing (no numpy 1.x to match)"
        return 0
    fi
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-numpy
    # the installed venv's pip drives the new one: ensurepip takes minutes under emulation
    in_root python3 -m venv --without-pip --system-site-packages /tmp/pinned
    in_root sh -c 'echo "numpy<2" >/tmp/numpy1.txt'
    in_root /opt/appliance/venv/bin/python -m pip --python /tmp/pinned/bin/python install --quiet \
        --constraint /tmp/numpy1.txt -e "$CHECKOUT_IN"
    local got out
    got=$(in_root /tmp/pinned/bin/python -c '
import importlib.metadata as md, numpy
print("numpy", numpy.__version__, "(from /" + numpy.__file__.split("/")[1] + "),",
      "ai-edge-litert", md.version("ai-edge-litert") + ",", "opencv-python-headless", md.version("opencv-python-headless"))')
    [[ "$got" == "numpy 1."*"(from /usr)"* ]] || { expect "the venv to use apt's numpy 1.x, got $got"; return 1; }
    out=$(in_root /tmp/pinned/bin/appliance classify --json --models-dir /var/lib/appliance/models \
        "$IMAGES_IN/parrot.jpg")
    printf '%s\n' "$out"
    [ "$(json 'd[0]["classes"][0]["label"]' <<<"$out")" = macaw ] || { expect "macaw with the pinned set"; return 1; }
    printf 'with numpy<2: %s\n' "$got" >"$LOGS/.pin"
    detail "apt's numpy $apt_numpy + numpy<2: $got; parrot -> macaw"
}

# --- main -----------------------------------------------------------------------------------------------

check_release() {
    RELEASE=$1
    STEP_NO=1
    ROOT="$CACHE/$RELEASE/run/root"
    mkdir -p "$CACHE/$RELEASE"
    # one check per release at a time: a second one would tear down the first one's root
    exec {LOCK_FD}>"$CACHE/$RELEASE/lock"
    if ! flock -n "$LOCK_FD"; then
        say "arm64-check: waiting for another arm64-check using the $RELEASE root to finish"
        flock "$LOCK_FD"
    fi
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    : >"$LOGS/.pin"
    local steps=("root:base_root" "mount:work_root" "copy in:copy_in" "install.sh:install_first"
        "install.sh again:install_again" "unit:unit_state" "doctor:doctor" "classify:classify" "detect:detect"
        "teach:teach" "classify --store:classify_store" "demo config:demo_config"
        "run --check-config:check_config" "run ${RUN_SECONDS}s:run_demo" "numpy pin:pinned_set"
        "versions:versions") one
    for one in "${steps[@]}"; do
        step "$RELEASE" "${one%%:*}" "${one#*:}"
        [ "$STEP_OK" = 1 ] || break  # each step needs the ones before it
    done
    release_root
    exec {LOCK_FD}>&-
}

main() {
    local which=${1:-all} releases=()
    case "$which" in
        all) releases=("${RELEASES[@]}") ;;
        bookworm|trixie) releases=("$which") ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; say "arm64-check: unknown release '$which': give bookworm, trixie or all" >&2; exit 2 ;;
    esac
    check_host
    LOGS="$CACHE/logs/$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$LOGS"
    trap release_root EXIT
    trap 'exit 130' INT TERM
    local start release
    start=$(now)
    say "arm64-check: $(qemu-aarch64-static --version | head -n 1); logs in $LOGS"
    for release in "${releases[@]}"; do
        check_release "$release"
    done
    if [ "$FAILED" = 0 ]; then
        say "arm64-check: all steps passed for ${releases[*]} in $(since "$start") s"
    else
        say "arm64-check: FAILED (see the lines marked fail above) after $(since "$start") s"
    fi
    return "$FAILED"
}

main "$@"; exit "$?"  # one line: bash reads a script as it runs, so an edit made meanwhile is never run
