#!/usr/bin/env bash
# Stands in for the system commands install.sh calls that cannot run in a test (linked under each
# command's name in a bin folder put first in PATH). Every call is appended to $FAKE_LOG as
# "name arg1 arg2 ..."; the few commands whose output install.sh reads answer from a small state
# folder ($FAKE_STATE) that the changing commands update, so a second run sees the first run's effects.
set -euo pipefail
name=$(basename "$0")
printf '%s\n' "$name${*:+ $*}" >>"$FAKE_LOG"
[ "${FAKE_FAIL:-}" = "$name" ] && exit 1  # a test can make one command fail, to stop install.sh there
state=$FAKE_STATE
mkdir -p "$state"
touch "$state/passwd" "$state/group" "$state/installed" "$state/versions"

case "$name" in
    id) [ "${1:-}" = -u ] && echo "${FAKE_UID:-0}" ;;
    dpkg) [ "${1:-}" = --print-architecture ] && echo "${FAKE_ARCH:-arm64}" ;;
    dpkg-query)  # -W [-f=FORMAT] PKG: ${Status} and ${Version} of what the stand-in apt-get installed
        # shellcheck disable=SC2016  # dpkg's format fields, literally
        pkg=${*: -1} fmt='${Status}'
        for arg in "$@"; do case "$arg" in -f=*) fmt=${arg#-f=} ;; esac; done
        grep -qx "$pkg" "$state/installed" || exit 1
        version=$(sed -n "s/^$pkg //p" "$state/versions" | tail -n 1)
        # shellcheck disable=SC2016
        out=${fmt//'${Status}'/install ok installed}
        # shellcheck disable=SC2016
        printf '%s' "${out//'${Version}'/${version:-1.0-1}}"
        exit 0 ;;
    apt-cache)
        pkg=${*: -1}
        echo "$pkg:"
        if [[ " ${FAKE_AVAILABLE:-} " == *" $pkg "* ]]; then echo "  Candidate: 1.0-1"; else echo "  Candidate: (none)"; fi ;;
    apt-get)  # `update` leaves package lists behind, as the real one does
        if [ "${1:-}" = update ]; then
            mkdir -p "$APPLIANCE_ROOT/var/lib/apt/lists"
            touch "$APPLIANCE_ROOT/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-arm64_Packages"
        fi
        if [[ " $* " == *" install "* ]]; then  # a .deb file installs the package its name says (NAME_VERSION_ARCH.deb)
            for arg in "${@:2}"; do
                case "$arg" in
                    -*|install) ;;
                    *.deb) deb=$(basename "$arg" .deb); echo "${deb%%_*}" >>"$state/installed"
                           deb=${deb#*_}; echo "$(basename "$arg" | cut -d_ -f1) ${deb%_*}" >>"$state/versions" ;;
                    *) echo "$arg" >>"$state/installed" ;;
                esac
            done
        fi ;;
    getent)
        grep "^$2:" "$state/$1" || exit 2 ;;
    useradd)
        user=${*: -1}
        echo "$user:x:999:999::/var/lib/appliance:/usr/sbin/nologin" >>"$state/passwd"
        echo "$user:x:999:" >>"$state/group" ;;
    usermod)  # usermod -a -G GROUP USER
        group=$3 user=$4
        sed -i -E "s/^($group:[^:]*:[^:]*:)(.+)$/\1\2,$user/; s/^($group:[^:]*:[^:]*:)$/\1$user/" "$state/group" ;;
    userdel)
        user=$1
        sed -i "/^$user:/d" "$state/passwd"
        sed -i -E "/^$user:/d; s/([:,])$user(,|$)/\1/; s/,$//" "$state/group" ;;
    systemctl)
        case "$1" in
            is-enabled) if [ -f "$state/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
            is-active) if [ -f "$state/active" ]; then echo active; else echo inactive; exit 3; fi ;;
            is-system-running)  # FAKE_SYSTEM_STATE=offline: a chroot or container without systemd
                echo "${FAKE_SYSTEM_STATE:-running}"; [ "${FAKE_SYSTEM_STATE:-running}" = running ] || exit 1 ;;
            enable) touch "$state/enabled" ;;
            start|restart) touch "$state/active" ;;
            disable) rm -f "$state/enabled"; [ "${2:-}" = --now ] && rm -f "$state/active" ;;
        esac ;;
    lsusb) [ -n "${FAKE_LSUSB:-}" ] && echo "$FAKE_LSUSB" ;;
    gpg)  # gpg --dearmor --yes -o FILE: leave a keyring file where install.sh asked for one
        out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
        cat >/dev/null
        [ -n "$out" ] && echo "keyring written by the test's gpg stand-in" >"$out" ;;
    systemd-analyze)  # verify UNIT: FAKE_VERIFY_ERROR is what a broken unit would make it say
        if [ -n "${FAKE_VERIFY_ERROR:-}" ]; then echo "$FAKE_VERIFY_ERROR" >&2; exit 1; fi ;;
    curl)  # curl ... -o FILE URL: FILE gets $FAKE_DOWNLOADS/<name of URL> if the test put one there
        out="" url=${*: -1}
        while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
        if [ -z "$out" ]; then echo "-----BEGIN PGP PUBLIC KEY BLOCK----- (test stand-in)"
        elif [ -f "${FAKE_DOWNLOADS:-/nonexistent}/$(basename "$url")" ]; then cp "$FAKE_DOWNLOADS/$(basename "$url")" "$out"
        else echo "stand-in download of $url" >"$out"
        fi ;;
esac
exit 0
