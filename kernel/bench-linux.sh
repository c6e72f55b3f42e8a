#!/bin/bash
# The Linux 6.1 side of the instruction-count benchmark (a benchmark, not a test): boots Debian's
# 6.1 cloud kernel (the one traces/linux-6.1 was captured with) under QEMU TCG with
# `-icount shift=0` (`-smp 2` as `ctxtrack bench kernel`), with and without `nohz_full=1`, and runs bench/syscall-loop.c on CPU 1
# from a busybox initramfs: getpid round trips and IRQs from user (membarrier IPIs from CPU 0).
# Prints two `bench: linux ...` lines per boot.
# Needs: qemu-system-x86_64, gcc with static glibc, apt-get download, dpkg-deb.
# Usage: bash kernel/bench-linux.sh    (WORK=/tmp/ctxtrack-bench-linux by default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
WORK=${WORK:-/tmp/ctxtrack-bench-linux}
KPKG=${KPKG:-linux-image-6.1.0-50-cloud-amd64-unsigned}
mkdir -p "$WORK" && cd "$WORK"
if [ ! -d kroot ]; then
    apt-get download "$KPKG" busybox-static >/dev/null
    for d in ./*.deb; do dpkg-deb -x "$d" kroot; done
fi
vmlinuz=$(ls kroot/boot/vmlinuz-* | head -n1)
rm -rf initrd && mkdir -p initrd/{bin,proc,sys,dev}
cp kroot/bin/busybox initrd/bin/busybox
gcc -O2 -static -pthread -o initrd/bin/syscall-loop "$here/bench/syscall-loop.c"
cat > initrd/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Linux 6.1 hangs bringing up APs at boot under QEMU 7.2 TCG -icount; CPU 1 is onlined here.
echo 1 > /sys/devices/system/cpu/cpu1/online
echo "online: $(cat /sys/devices/system/cpu/online)"
echo "cmdline: $(cat /proc/cmdline)"
echo "nohz_full: $(cat /sys/devices/system/cpu/nohz_full 2>/dev/null)"
/bin/syscall-loop
poweroff -f
INIT
chmod +x initrd/init
(cd initrd && find . | "$WORK/kroot/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip > initrd.cpio.gz
for mode in off nohz; do
    extra=""
    [ "$mode" = nohz ] && extra="nohz_full=1 rcu_nocbs=1"
    echo "== Linux 6.1, ${mode}: $extra"
    timeout "${QEMU_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -icount shift=0 -smp "${SMP:-2}" -m 1024 \
        -display none -serial stdio -no-reboot -kernel "$vmlinuz" -initrd initrd.cpio.gz \
        -append "console=ttyS0 panic=-1 tsc=reliable quiet rdinit=/init maxcpus=1 $extra" \
        | tr -d '\r' | tee "boot-$mode.log" | grep -E "^(bench|nohz_full|online|cmdline)"
done
