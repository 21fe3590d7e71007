#!/usr/bin/env bash
# Debian packages the e2e test needs (see tests/e2e/README.md): QEMU, a stock Debian kernel with
# its headers, v4l2loopback built for that kernel by dkms (0.12.7 on Debian 12), v4l-utils for
# v4l2-ctl, ffmpeg, GStreamer and Chromium (the guest's readers; its root is this machine's), a static
# busybox for its initramfs; then the source of the newer driver generation, Debian 13's
# v4l2loopback-dkms (0.15), downloaded but not installed: run.sh --driver 0.15 builds it for the
# guest kernel. Also qemu-user, for the INT8 parity check on an emulated AVX2 CPU
# (benchmarks/int8_parity.py --emulate). Skips apt when everything is already there.
set -euo pipefail

PACKAGES=(qemu-system-x86 linux-image-amd64 linux-headers-amd64 v4l2loopback-dkms v4l-utils
          ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
          chromium busybox-static qemu-user)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)  # apt-get needs root
fi
export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -eq 0 ]; then
    echo "e2e: Debian packages already installed"
else
    echo "e2e: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    # dkms also tries to build v4l2loopback for the *running* kernel, whose headers do not exist
    # here; that only prints a warning. What matters is the module for the installed Debian
    # kernel, which run.sh finds (or builds itself) and checks. INITRD=No: the guest boots with
    # run.sh's own initramfs, so the kernel package need not generate one of its own.
    "${SUDO[@]}" env INITRD=No apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The 0.15 driver's source: trixie's package, fetched with an apt configuration of its own so
# the machine's sources stay as they are.
cache=${E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sharpcam/e2e}
if ! ls "$cache"/v4l2loopback-dkms_0.15*_all.deb >/dev/null 2>&1; then
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$cache/apt/sources.list"
    apt_trixie=(-qq -o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
                -o APT::Sandbox::User=root)
    echo "e2e: fetching v4l2loopback-dkms 0.15 (Debian 13) into $cache"
    "${SUDO[@]}" apt-get "${apt_trixie[@]}" update
    (cd "$cache" && "${SUDO[@]}" apt-get "${apt_trixie[@]}" download v4l2loopback-dkms/trixie)
fi
