#!/bin/bash
# capture.sh -- capture REAL Linux traces on a nohz_full CPU and on a CPU without it, each with
# the kernel's own CPU-time figures beside it (issue 18's captures, in traces/linux-6.1/workloads).
#
# One boot: nohz_full=2-3, so CPU 3 runs with context tracking active (vtime) and CPU 1 without
# it (tick sampling), and every workload runs once on each.  Besides the ftrace text, some runs
# are recorded with trace-cmd (binary trace.dat, file versions 6 and 7 with zstd) so that the
# native reader can be compared with `trace-cmd report` on the same file.
#
# Boots the Debian 6.1 "cloud" kernel (CONFIG_NO_HZ_FULL=y,
# CONFIG_CONTEXT_TRACKING_USER=y, CONFIG_VIRT_CPU_ACCOUNTING_GEN=y) in QEMU/TCG
# with a busybox-static initramfs, runs workloads pinned to nohz_full CPUs with
# ftrace events enabled, and copies the results out through a raw virtio disk
# that the guest writes as a tar archive.
#
# Requirements on the host (Debian 12 / bookworm, x86_64, run as root):
#   qemu-system-x86_64 (qemu-system-x86), apt-get/dpkg-deb, gzip, tar, gcc with static glibc
#   (ctload.c beside this script), perf (linux-perf) and trace-cmd (trace-cmd), both copied into
#   the guest with their libraries.
# Everything else (kernel, busybox, cpio) is fetched with `apt-get download`.
#
# Usage:  ./capture.sh            # results go next to this script
#         OUTDIR=/some/dir ./capture.sh
# Env knobs: WORK (scratch, default a scratch folder under /tmp), OUTDIR, SMP (4), MEM (2048),
#            KPKG (kernel package), BOOTS ("nohz off"), QEMU_TIMEOUT (1500 s).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/ctxtrack-capture-workloads}
OUTDIR=${OUTDIR:-$HERE/../linux-6.1/workloads}
KPKG=${KPKG:-linux-image-6.1.0-50-cloud-amd64-unsigned}
SMP=${SMP:-4}
MEM=${MEM:-2048}
BOOTS=${BOOTS:-"mixed"}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-1500}
# Kernel command line shared by both boots.  tsc=reliable: the TCG-emulated
# CPU (qemu64, AMD vendor, no constant_tsc) makes the kernel log "Marking TSC
# unstable due to TSCs unsynchronized", fall back to the hpet clocksource and
# run sched_clock in its "unstable" (tick-filtered, per-CPU) mode.  Real
# nohz_full hosts have a stable TSC, so we assert it.  (Tested: without it the
# nohz_full tick still stopped -- the CLOCK_UNSTABLE tick dependency is only
# set on a stable->unstable transition after boot -- but timestamps come
# from a different clock path.)
BASE_CMDLINE=${BASE_CMDLINE:-"console=ttyS0 panic=-1 tsc=reliable rcu_nocbs=1-3 rdinit=/init"}
NOHZ_CMDLINE=${NOHZ_CMDLINE:-"nohz_full=2-3"}

log() { echo "[capture] $*" >&2; }
mkdir -p "$WORK" "$OUTDIR"
cd "$WORK"

# ---------------------------------------------------------------- 1. packages
if [ ! -f kernel.deb ]; then
    rm -f ./*.deb
    apt-get download "$KPKG" busybox-static cpio
    mv ${KPKG}_*.deb kernel.deb
    mv busybox-static_*.deb busybox.deb
    mv cpio_*.deb cpio.deb
fi
if [ ! -d kroot ]; then
    for p in kernel busybox cpio; do dpkg-deb -x $p.deb kroot; done
fi
KVER=$(ls kroot/lib/modules | head -n1)
VMLINUZ=kroot/boot/vmlinuz-$KVER
CPIO=$(command -v cpio || echo "$WORK/kroot/bin/cpio")
log "kernel $KVER"
grep -E '^CONFIG_(NO_HZ_FULL|CONTEXT_TRACKING_USER|VIRT_CPU_ACCOUNTING_GEN|IRQ_TIME_ACCOUNTING|TICK_CPU_ACCOUNTING|PARAVIRT_TIME_ACCOUNTING|GENERIC_ENTRY|FTRACE|EVENT_TRACING|FTRACE_SYSCALLS|RCU_TRACE|HZ|PREEMPT[A-Z_]*)=' \
    kroot/boot/config-$KVER > kconfig-excerpt.txt || true

# ------------------------------------------------------- 2. perf + libraries
PERF=${PERF:-$(command -v perf || true)}
if [ -z "$PERF" ]; then
    log "perf not found: installing linux-perf"; apt-get install -y linux-perf
    PERF=$(command -v perf)
fi
PERF=$(readlink -f "$PERF")
# Debian may install a shell wrapper that execs perf_<version>
if ! head -c4 "$PERF" | grep -q ELF; then
    PERF=$(ls /usr/bin/perf_* 2>/dev/null | sort -V | tail -n1)
fi
log "perf binary: $PERF ($("$PERF" --version))"

# ------------------------------------------------------- 3. build initramfs
rm -rf initrd && mkdir -p initrd/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,out,lib64,lib/x86_64-linux-gnu,lib/modules}
cp kroot/bin/busybox initrd/bin/busybox
cp "$PERF" initrd/bin/perf
TRACECMD=$(command -v trace-cmd || { apt-get install -y trace-cmd >&2 && command -v trace-cmd; })
cp "$TRACECMD" initrd/bin/trace-cmd
gcc -O2 -static -pthread -Wall -o initrd/bin/ctload "$HERE/ctload.c"
for lib in $(ldd "$PERF" "$TRACECMD" | awk '/=>/ {print $3} /^[[:space:]]*\/lib64/ {print $1}' | sort -u); do
    [ -f "$lib" ] || continue
    mkdir -p "initrd$(dirname "$lib")"
    cp -L "$lib" "initrd$lib"
done
cp -L /lib64/ld-linux-x86-64.so.2 initrd/lib64/
# virtio-blk is modular in this kernel: ship the modules, insmod in order
for m in virtio/virtio virtio/virtio_ring virtio/virtio_pci_legacy_dev \
         virtio/virtio_pci_modern_dev virtio/virtio_pci; do
    cp kroot/lib/modules/$KVER/kernel/drivers/$m.ko initrd/lib/modules/
done
cp kroot/lib/modules/$KVER/kernel/drivers/block/virtio_blk.ko initrd/lib/modules/
# /dev/console must exist in the initramfs, otherwise PID 1 has no stdio
mknod -m 600 initrd/dev/console c 5 1 2>/dev/null || true
mknod -m 666 initrd/dev/null c 1 3 2>/dev/null || true

cat > initrd/init <<'GUEST_INIT'
#!/bin/busybox sh
# ---- runs as PID 1 inside the guest ----
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmpfs /out
mount -t tracefs tracefs /sys/kernel/tracing || mount -t debugfs debugfs /sys/kernel/debug
T=/sys/kernel/tracing; [ -e $T/trace ] || T=/sys/kernel/debug/tracing
MODE=$(sed -n 's/.*lkt_mode=\([a-z]*\).*/\1/p' /proc/cmdline)
O=/out/$MODE; mkdir -p $O
echo "LKT: mode=$MODE"
# keep init and the wrapper shells on housekeeping CPU 0; only the workload
# itself is moved (taskset) to the measured CPU
taskset -p 1 $$ >/dev/null

# ---- environment record
{
  echo "uname: $(uname -a)"
  echo "cmdline: $(cat /proc/cmdline)"
  echo "nohz_full: $(cat /sys/devices/system/cpu/nohz_full 2>/dev/null)"
  echo "isolated: $(cat /sys/devices/system/cpu/isolated 2>/dev/null)"
  echo "online: $(cat /sys/devices/system/cpu/online)"
  echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
  echo "USER_HZ(CLK_TCK): 100 (procfs utime/stime units)"
  echo "perf: $(perf --version 2>&1)"
} > $O/env.txt
cat $O/env.txt
dmesg > $O/dmesg-boot.txt
grep -iE 'nohz|context track|tick|tsc|rcu|clocksource|housekeep' $O/dmesg-boot.txt

# ---- ftrace setup
echo 0 > $T/tracing_on
echo nop > $T/current_tracer
echo global > $T/trace_clock
echo 32768 > $T/buffer_size_kb
# the thread-group id beside each pid: /proc adds a process's threads before cputime_adjust()
echo 1 > $T/options/record-tgid
echo > $T/set_event
EVENTS="context_tracking:user_enter context_tracking:user_exit irq_vectors:* irq:* ipi:*
  raw_syscalls:sys_enter raw_syscalls:sys_exit exceptions:page_fault_user exceptions:page_fault_kernel
  sched:sched_switch sched:sched_wakeup sched:sched_wakeup_new sched:sched_migrate_task
  sched:sched_process_exec sched:sched_process_exit sched:sched_process_fork
  timer:tick_stop timer:hrtimer_start timer:hrtimer_cancel timer:hrtimer_expire_entry
  timer:hrtimer_expire_exit rcu:*"
set -f
for ev in $EVENTS; do
    echo "$ev" >> $T/set_event 2>/dev/null || echo "LKT: event $ev not available"
done
set +f
cat $T/set_event > $O/enabled-events.txt
for e in context_tracking/user_enter timer/tick_stop raw_syscalls/sys_enter irq_vectors/call_function_entry; do
    cat $T/events/$e/format > $O/format-$(echo $e | tr / _).txt 2>/dev/null
done

# The kernel's own figures around a run: every CPU's /proc/stat line (USER_HZ ticks).
procstat() { grep -E '^cpu[0-9]' /proc/stat; }
# wrapper_figures FILE: the wrapper shell's stat (cutime/cstime = every child it reaped).
wrapper_figures() {
  f=$1
  set -- $(sed -n 's/^wrapper stat: //p' $f | sed 's/.*) //')
  echo "cutime=${14} cstime=${15} (clock ticks of 10 ms: user/sys of the workload incl. children)" >> $f
}
# run_wl NAME CPU MASK CMD...: CMD pinned to CPU (taskset), ftrace text of the CPUs in MASK (the
# measured CPU and CPU 0, where the wrapper forks it: the trace links the workload to the wrapper).
run_wl() {
  name=$1; cpu=$2; mask=$3; shift 3
  echo "LKT: start $name cpu=$cpu: $*"
  echo 0 > $T/tracing_on; echo > $T/trace
  printf '%x\n' $mask > $T/tracing_cpumask
  cat /proc/interrupts > $O/$name.interrupts-before.txt
  procstat > $O/$name.procstat-before.txt
  echo 1 > $T/tracing_on
  sh -c 'echo "command: $*"; echo "wrapper pid=$$"; time taskset -c '$cpu' "$@"; echo "rc=$?"; echo "wrapper stat: $(cat /proc/$$/stat)"' wl "$@" > $O/$name.output.txt 2>&1
  echo 0 > $T/tracing_on
  procstat > $O/$name.procstat-after.txt
  cat /proc/interrupts > $O/$name.interrupts-after.txt
  wrapper_figures $O/$name.output.txt
  cat $O/$name.output.txt
  cat $T/per_cpu/cpu$cpu/stats > $O/$name.ringbuf-stats.txt
  cat $T/trace > $O/$name.trace.txt
  echo "LKT: $name trace lines: $(wc -l < $O/$name.trace.txt)"; grep overrun $O/$name.ringbuf-stats.txt
}
# run_busy NAME CPU SECONDS [DISTURB]: "while :; do :; done" (pure ash builtins, no syscalls) on
# CPU, started by a wrapper on CPU 0 that sleeps (running DISTURB meanwhile, if given), reads the
# loop's /proc/PID/stat and schedstat while it runs, kills and reaps it.  Traces CPU and CPU 0.
run_busy() {
  name=$1; cpu=$2; secs=$3; disturb=${4:-}
  echo "LKT: start $name cpu=$cpu busy ${secs}s disturb=$disturb"
  echo 0 > $T/tracing_on; echo > $T/trace
  printf '%x\n' $(((1 << cpu) | 1)) > $T/tracing_cpumask
  cat /proc/interrupts > $O/$name.interrupts-before.txt
  procstat > $O/$name.procstat-before.txt
  echo 1 > $T/tracing_on
  TM=$T/trace_marker TL=$O/$name.timer_list-during.txt DISTURB="$disturb" sh -c '
    echo "command: taskset -c '$cpu' sh -c \"while :; do :; done\" (killed after sleep '$secs')${DISTURB:+, meanwhile on CPU 0: $DISTURB}"
    echo "wrapper pid=$$"
    echo "LKT wrapper: forking busy loop" > $TM
    taskset -c '$cpu' sh -c "while :; do :; done" &
    P=$!
    echo "loop pid=$P"
    if [ -n "$DISTURB" ]; then sleep 0.2; eval "$DISTURB"; fi
    sleep '$secs'
    echo "LKT wrapper: sleep done, reading /proc/$P/schedstat and /proc/$P/stat" > $TM
    echo "running schedstat (sum_exec_runtime_ns run_delay_ns pcount): $(cat /proc/$P/schedstat)"
    echo "running stat (/proc/PID/stat): $(cat /proc/$P/stat)"
    echo "LKT wrapper: reading /proc/timer_list" > $TM
    cat /proc/timer_list > $TL
    echo "LKT wrapper: kill $P" > $TM
    kill $P; wait $P
    echo "LKT wrapper: reaped $P" > $TM
    echo "wrapper stat: $(cat /proc/$$/stat)"' > $O/$name.output.txt 2>&1
  echo 0 > $T/tracing_on
  procstat > $O/$name.procstat-after.txt
  cat /proc/interrupts > $O/$name.interrupts-after.txt
  set -- $(grep -F "running stat (/proc/PID/stat): " $O/$name.output.txt | sed 's/.*) //')
  echo "running: utime=${12} stime=${13} (clock ticks of 10 ms, read while the loop was running)" >> $O/$name.output.txt
  wrapper_figures $O/$name.output.txt
  echo "cpu$cpu tick_sched during loop: $(sed -n "/^cpu: $cpu\$/,/^cpu: /p" $O/$name.timer_list-during.txt | grep -E 'nohz_mode|tick_stopped|idle_active' | tr -s ' \n' ' ')" >> $O/$name.output.txt
  rm -f $O/$name.timer_list-during.txt
  cat $O/$name.output.txt
  cat $T/per_cpu/cpu$cpu/stats > $O/$name.ringbuf-stats.txt
  cat $T/trace > $O/$name.trace.txt
  echo "LKT: $name trace lines: $(wc -l < $O/$name.trace.txt)"
}
# run_dat NAME CPU MASK ARGS -- CMD...: the same workload recorded by trace-cmd into NAME.dat
# (trace-cmd and its recorders on CPU 0; ARGS choose the file version and compression).  A shell
# pinned with the workload runs it and prints its own stat after reaping it: its cutime/cstime
# are the workload's, without trace-cmd's.
run_dat() {
  name=$1; cpu=$2; mask=$3; shift 3; args=
  while [ "$1" != -- ]; do args="$args $1"; shift; done; shift
  echo "LKT: start $name (trace-cmd record$args) cpu=$cpu: $*"
  evs=; for ev in $(cat $O/enabled-events.txt); do evs="$evs -e $ev"; done  # only what exists
  taskset -c 0 trace-cmd record -q $args -C global -M $(printf '%x' $mask) $evs \
      -o $O/$name.dat taskset -c $cpu sh -c 'echo "command: $*"; echo "wrapper pid=$$"; "$@"; echo "wrapper stat: $(cat /proc/$$/stat)"' wl "$@" > $O/$name.output.txt 2>&1
  wrapper_figures $O/$name.output.txt
  cat $O/$name.output.txt
  echo "LKT: $name: $(ls -l $O/$name.dat)"
}

sleep 1
# CPU 3 is nohz_full (context tracking active), CPU 1 is not.
for c in 3 1; do
  kind=$([ $c = 3 ] && echo nohz || echo off)
  run_busy $kind-busyloop-cpu$c $c 1
  run_wl   $kind-dd-syscalls-cpu$c $c $(((1 << c) | 1)) dd if=/dev/zero of=/dev/null bs=1 count=10000
  run_wl   $kind-messaging-pipe-cpu$c $c $(((1 << c) | 1)) perf bench sched messaging -p -g 1 -l 20
  run_wl   $kind-messaging-socket-cpu$c $c $(((1 << c) | 1)) perf bench sched messaging -g 1 -l 20
  run_wl   $kind-faults-cpu$c $c $(((1 << c) | 1)) ctload faults 16 6
  # IPIs to the CPU: the main thread stays on CPU 0 (taskset), the spinner moves itself to $c
  run_wl   $kind-tlb-ipis-cpu$c 0 $(((1 << c) | 1)) ctload tlb 500 $c
  run_wl   $kind-membarrier-ipis-cpu$c 0 $(((1 << c) | 1)) ctload membarrier 500 $c
done
# a static key flipped by a sysctl write (text_poke_bp_batch IPIs every CPU) under a busy loop
run_busy nohz-sysctl-ipis-cpu3 3 1 'for i in 1 2 3 4 5 6 7 8 9 10; do echo 1 > /proc/sys/kernel/sched_schedstats; echo 0 > /proc/sys/kernel/sched_schedstats; done'
# trace.dat, for the native reader: v6, v7 + zstd
run_dat nohz-messaging-socket-cpu3.v6 3 9 --file-version 6 -- perf bench sched messaging -g 1 -l 20
run_dat nohz-messaging-socket-cpu3.v7 3 9 --file-version 7 --compression zstd -- perf bench sched messaging -g 1 -l 20
run_dat nohz-dd-syscalls-cpu3.v7 3 9 --file-version 7 --compression zstd -- dd if=/dev/zero of=/dev/null bs=1 count=10000
run_dat off-messaging-pipe-cpu1.v7 1 3 --file-version 7 --compression zstd -- perf bench sched messaging -p -g 1 -l 20
run_dat nohz-tlb-ipis-cpu3.v7 0 9 --file-version 7 --compression zstd -- ctload tlb 300 3
cat /proc/timer_list > $O/timer_list-end.txt 2>/dev/null
dmesg > $O/dmesg-end.txt

# ---- export: tar onto the raw virtio disk
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  insmod /lib/modules/$m.ko || echo "LKT: insmod $m failed"
done
sleep 1
for i in 1 2 3 4 5; do [ -b /dev/vda ] && break; sleep 1; done
cd /out && tar -cf /dev/vda . && sync && echo "LKT: export-ok $(du -sk /out | cut -f1) KiB"
poweroff -f
GUEST_INIT
chmod +x initrd/init
( cd initrd && find . | "$CPIO" -o -H newc --quiet ) | gzip -1 > initrd.cpio.gz
log "initramfs: $(du -h initrd.cpio.gz | cut -f1)"

# ------------------------------------------------------------- 4. boot(s)
for mode in $BOOTS; do
    if [ "$mode" != off ]; then cmd="$BASE_CMDLINE $NOHZ_CMDLINE lkt_mode=$mode"
    else cmd="$BASE_CMDLINE lkt_mode=$mode"; fi
    rm -f out-$mode.img; truncate -s 512M out-$mode.img
    log "booting mode=$mode: $cmd"
    timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -accel tcg -smp "$SMP" -m "$MEM" \
        -nographic -no-reboot -kernel "$VMLINUZ" -initrd initrd.cpio.gz \
        -append "$cmd" \
        -drive file=out-$mode.img,format=raw,if=virtio,cache=unsafe \
        > console-$mode.log 2>&1 || log "qemu exited with $?"
    grep -a 'LKT: export-ok' console-$mode.log || { log "export failed, see $WORK/console-$mode.log"; exit 1; }
    rm -rf res && mkdir res && tar -xf out-$mode.img -C res
    for f in res/$mode/*; do
        b=$(basename "$f")
        case "$b" in
          *.trace.txt|dmesg-*|timer_list*) gzip -9 -c "$f" > "$OUTDIR/$b.gz" ;;
          *.dat)
            # trace-cmd's own text of the same file, for the reader's equivalence test
            trace-cmd report -l -t -i "$f" 2>/dev/null | gzip -9 > "$OUTDIR/${b%.dat}.report.txt.gz"
            if head -c 64 "$f" | grep -qa zstd; then cp "$f" "$OUTDIR/$b"; else gzip -9 -c "$f" > "$OUTDIR/$b.gz"; fi ;;
          *) cp "$f" "$OUTDIR/$b" ;;
        esac
    done
    tr -d '\r' < console-$mode.log | gzip -9 > "$OUTDIR/console-$mode.log.gz"
done
cp kconfig-excerpt.txt "$OUTDIR/kconfig-excerpt.txt"
log "done: $(du -sh "$OUTDIR" | cut -f1) in $OUTDIR"
