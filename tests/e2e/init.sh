#!/bin/busybox sh
# PID 1 of the e2e guest, packed into the initramfs by initramfs.py (run.sh boots it).
#
# Loads the kernel modules the initramfs carries (virtio, 9p, overlay, videodev; in dependency
# order, as numbered by initramfs.py), mounts the host's root filesystem read-only over 9p with a
# tmpfs overlay on top (so the guest runs the host's own Python, venv and repository), mounts the
# writable share at /e2e, runs tests/e2e/guest.py in a chroot and powers off.
# However it ends, the machine stops: if this script died, PID 1 exiting panics the kernel, and
# panic=-1 with QEMU's -no-reboot turn that into QEMU exiting.

/bin/busybox --install -s /bin
export PATH=/bin

give_up() {
    echo "e2e-init: FAILED: $*"
    poweroff -f
    sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for module in /modules/*.ko; do
    insmod "$module" || give_up "insmod $module"
done

P9="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p /lower /rw /newroot
mount -t 9p -o "$P9,cache=loose,ro" hostroot /lower || give_up "mounting the host's root (9p)"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || give_up "mounting the overlay"
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/e2e
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
# No fresh tmpfs on /tmp: the checkout under test may live there (CI clones anywhere), and the
# overlay already makes /tmp writable without touching the host's.
mount -t 9p -o "$P9" e2e /newroot/e2e || give_up "mounting the results share (9p)"

echo "e2e-init: root ready, running the scenarios"
# config.sh (written by run.sh) sets E2E_REPO, E2E_PYTHON and E2E_SCRIPT (guest.py).
chroot /newroot /usr/bin/env -i HOME=/root LANG=C.UTF-8 PYTHONUNBUFFERED=1 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh -c '. /e2e/config.sh && cd "$E2E_REPO" && exec "$E2E_PYTHON" "$E2E_SCRIPT" /e2e'
echo "$?" > /newroot/e2e/guest-exit-code
sync
umount /newroot/e2e
echo "e2e-init: done, powering off"
poweroff -f
sleep 10
