#!/usr/bin/env bash
# End-to-end test of vcam against the real v4l2loopback driver, in a QEMU guest
# (tests/e2e/README.md). Needs the packages of install-deps.sh and the project's .venv.
# Exit code 0 only if the guest ran and every scenario passed; a hang or a kernel panic ends
# with the boot timeout and the console log printed.
#
# usage: run.sh [--driver 0.12|0.15]   the v4l2loopback generation to test (default 0.12: Debian
#        12's dkms build; 0.15: Debian 13's source, fetched by install-deps.sh, built here)
#
# Environment: E2E_BOOT_TIMEOUT (s, default 720) bounds the whole boot; E2E_KEEP=1 keeps the
# work folder; E2E_VERBOSE=1 prints the console log even on success; E2E_BUILD_MODULE=1 builds
# v4l2loopback from source even when dkms built it; E2E_SCRIPT runs another guest script (for
# debugging the harness); PYTHON overrides the interpreter (default .venv/bin/python).
set -euo pipefail

driver=0.12
while [ $# -gt 0 ]; do
    case $1 in
        --driver) driver=${2:?--driver needs 0.12 or 0.15}; shift 2 ;;
        *) echo "usage: $0 [--driver 0.12|0.15]" >&2; exit 2 ;;
    esac
done
case $driver in 0.12|0.15) ;; *) echo "e2e: --driver must be 0.12 or 0.15 (got $driver)" >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.."
repo=$PWD
python=${PYTHON:-$repo/.venv/bin/python}
boot_timeout=${E2E_BOOT_TIMEOUT:-720}
started=$SECONDS

say() { echo "e2e: $*"; }
die() { say "ERROR: $*" >&2; exit 1; }

[ -x "$python" ] || die "$python not found: run 'make test' (or 'make e2e') first"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run tests/e2e/install-deps.sh"
command -v busybox >/dev/null || die "busybox missing: run tests/e2e/install-deps.sh"

# The kernel: the newest Debian kernel installed under /boot (never the running one, which
# has no modules on this machine).
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || die "no /boot/vmlinuz-*: run tests/e2e/install-deps.sh"
kver=${kernel#/boot/vmlinuz-}
[ -r "$kernel" ] || die "$kernel is not readable (run as root)"
[ -d "/lib/modules/$kver" ] || die "/lib/modules/$kver missing (linux-image package broken?)"

work=$(mktemp -d "${TMPDIR:-/tmp}/sharpcam-e2e.XXXXXX")
cleanup() {
    if [ "${E2E_KEEP:-0}" = 1 ]; then say "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
share=$work/share
mkdir -p "$share"

# v4l2loopback for that kernel. 0.12: dkms's build if it made one, else built from the dkms
# source. 0.15: built from Debian 13's package source.
ko=
src=
if [ "$driver" = 0.15 ]; then
    cache=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sharpcam/e2e}
    deb=$(ls "$cache"/v4l2loopback-dkms_0.15*_all.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$deb" ] || die "no v4l2loopback-dkms 0.15 package in $cache: run tests/e2e/install-deps.sh"
    dpkg-deb -x "$deb" "$work/deb"
    src=$(ls -d "$work"/deb/usr/src/v4l2loopback-* | tail -n 1)
else
    ko=$(find "/lib/modules/$kver" -name 'v4l2loopback.ko*' 2>/dev/null | sort | head -n 1 || true)
    if [ -z "$ko" ] || [ "${E2E_BUILD_MODULE:-0}" = 1 ]; then
        src=$(ls -d /usr/src/v4l2loopback-* 2>/dev/null | sort -V | tail -n 1 || true)
        [ -n "$src" ] || die "no v4l2loopback module for $kver and no /usr/src/v4l2loopback-*"
    fi
fi
if [ -n "$src" ]; then
    say "building v4l2loopback for $kver from $src"
    cp -r "$src" "$work/v4l2loopback-src"
    make -s -C "/lib/modules/$kver/build" M="$work/v4l2loopback-src" modules \
        > "$work/module-build.log" 2>&1 || { cat "$work/module-build.log"; die "module build failed"; }
    ko=$work/v4l2loopback-src/v4l2loopback.ko
fi
version=$(modinfo -F version "$ko" 2>/dev/null || true)
echo "${version:-$driver}" > "$share/driver-version"  # the guest's sysfs may not say (0.12.7 does not)
say "driver $driver ($(cat "$share/driver-version")): kernel $kver, module $ko"

"$python" tests/e2e/prepare.py "$share"
"$python" tests/e2e/initramfs.py --kver "$kver" --v4l2loopback "$ko" \
    --out "$work/initramfs.cpio" --module-out "$share/v4l2loopback.ko"
{
    printf 'E2E_REPO=%q\n' "$repo"
    printf 'E2E_PYTHON=%q\n' "$python"
    printf 'E2E_SCRIPT=%q\n' "${E2E_SCRIPT:-tests/e2e/guest.py}"
} > "$share/config.sh"

# No KVM on these machines: multi-threaded TCG. The guest's root is the host's own root,
# shared read-only over 9p; the second share carries the inputs in and the results out.
say "booting the guest (timeout ${boot_timeout}s)"
boot_started=$SECONDS
qemu_rc=0
timeout --kill-after=10 "$boot_timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
    -nographic -no-reboot -nic none \
    -kernel "$kernel" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 loglevel=4" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$share,mount_tag=e2e,security_model=none,multidevs=remap" \
    < /dev/null > "$work/console.log" 2>&1 || qemu_rc=$?
boot_seconds=$((SECONDS - boot_started))

show_console() {
    say "----- guest console log ($work/console.log) -----"
    # without the firmware's terminal escapes (one of them resets the terminal)
    sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' "$work/console.log" \
        | LC_ALL=C tr -d '\000-\010\013\014\016-\037'
    say "----- end of console log -----"
}

# The verdicts are printed after the console log, so that a log's tail names what failed.
status=0
verdicts="$work/verdicts.txt"
{
    if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
        say "FAIL: the guest did not finish within ${boot_timeout}s (hang?)"
        status=1
    elif [ "$qemu_rc" -ne 0 ]; then
        say "FAIL: qemu exited with $qemu_rc"
        status=1
    fi
    # guest.py's verdict per scenario; guest-exit-code is written by init.sh after guest.py.
    if ! "$python" tests/e2e/report.py "$share" 2>&1; then
        status=1
    fi
    if [ "$(cat "$share/guest-exit-code" 2>/dev/null || echo missing)" != 0 ]; then
        say "FAIL: guest exit code $(cat "$share/guest-exit-code" 2>/dev/null || echo 'missing (guest died?)')"
        status=1
    fi
} > "$verdicts"

if [ "$status" -ne 0 ] || [ "${E2E_VERBOSE:-0}" = 1 ]; then
    show_console
fi
cat "$verdicts"
failed=$(sed -n 's/^e2e: FAIL  *\([^ :]*\).*/\1/p' "$verdicts" | paste -sd ' ' -)
say "driver $driver: boot ${boot_seconds}s, total $((SECONDS - started))s: $([ "$status" -eq 0 ] && echo PASSED || echo "FAILED ${failed:-}")"
exit "$status"
