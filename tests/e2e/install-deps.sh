#!/usr/bin/env bash
# Debian packages the e2e test needs (see tests/e2e/README.md): QEMU, a stock Debian kernel with
# its headers, v4l2loopback built for that kernel by dkms, v4l-utils for v4l2-ctl, and a static
# busybox for the guest's initramfs. Skips apt entirely when everything is already installed.
set -euo pipefail

PACKAGES=(qemu-system-x86 linux-image-amd64 linux-headers-amd64 v4l2loopback-dkms v4l-utils
          busybox-static)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "e2e: Debian packages already installed"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)  # apt-get needs root
fi
echo "e2e: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# dkms also tries to build v4l2loopback for the *running* kernel, whose headers do not exist
# here; that only prints a warning. What matters is the module for the installed Debian kernel,
# which run.sh finds (or builds itself) and checks. INITRD=No: the guest boots with run.sh's own
# initramfs, so the kernel package need not spend time generating one of its own.
"${SUDO[@]}" env INITRD=No apt-get install -y -qq --no-install-recommends "${missing[@]}"
