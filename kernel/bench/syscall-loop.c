/* The Linux side of the instruction-count benchmark (bench-linux.sh), on CPU 1, timed with
 * rdtsc, which under QEMU `-icount shift=0` counts instructions (those of every vCPU):
 *
 * 1. `getpid()` round trips: the minimum over batches (a tick or other noise only ever adds).
 *    Static, no libc calls in the loop: the raw `syscall` instruction, as the ctxtrack kernel's
 *    user program.
 * 2. IRQs from user, measured as the ctxtrack kernel's `bench` workload does: a thread on
 *    CPU 0 sleeps, wakes, bumps a counter and sends CPU 1 a call-function-single IPI with
 *    membarrier(PRIVATE_EXPEDITED) (handler: one smp_mb()), then sleeps again, so CPU 0 is
 *    halted otherwise. On CPU 1 a tight loop `t = rdtsc(); c = counter` sees the counter move
 *    at iteration k; the IPI landed between t(k-1) and c(k), so t(k+1) - t(k-1) spans it. The
 *    result is the minimum such span minus the minimum span without an IPI. Like the ctxtrack
 *    kernel's figure it includes CPU 0's wakeup-to-IPI instructions, the same in both modes. */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define IRQS 200

static inline long sys_getpid(void)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(39L) : "rcx", "r11", "memory");
	return r;
}

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("sched_setaffinity");
		return -1;
	}
	return 0;
}

/* Set by the measuring thread when it is in its loop; bumped by the sender before each IPI. */
static volatile int armed;
static volatile int sent;

static void *sender(void *arg)
{
	(void)arg;
	if (pin(0))
		return NULL;
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	for (int i = 0; i < IRQS; i++) {
		while (!__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
			nanosleep(&ts, NULL);
		nanosleep(&ts, NULL);
		__atomic_store_n(&armed, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sent, sent + 1, __ATOMIC_RELEASE);
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	}
	return NULL;
}

static void irq_from_user(void)
{
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0)) {
		perror("membarrier register");
		return;
	}
	pthread_t th;
	if (pthread_create(&th, NULL, sender, NULL)) {
		perror("pthread_create");
		return;
	}
	uint64_t best = UINT64_MAX, base = UINT64_MAX;
	for (int i = 0; i < IRQS; i++) {
		int c0 = __atomic_load_n(&sent, __ATOMIC_ACQUIRE);
		__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
		uint64_t t2 = __rdtsc(), t1 = __rdtsc();
		for (;;) {
			uint64_t t = __rdtsc();
			int c = __atomic_load_n(&sent, __ATOMIC_RELAXED);
			if (c != c0) {
				uint64_t span = __rdtsc() - t1;
				if (span < best)
					best = span;
				break;
			}
			if (t - t2 < base)
				base = t - t2;
			t2 = t1;
			t1 = t;
		}
	}
	pthread_join(th, NULL);
	printf("bench: linux irq_from_user=%lu instructions (span %lu - loop %lu)\n",
	       (unsigned long)(best - base), (unsigned long)best, (unsigned long)base);
}

int main(void)
{
	if (pin(1))
		return 1;
	for (int i = 0; i < 1000; i++)
		sys_getpid();
	uint64_t best = UINT64_MAX;
	for (int b = 0; b < 20; b++) {
		uint64_t t0 = __rdtsc();
		for (int i = 0; i < 2000; i++)
			sys_getpid();
		uint64_t t1 = __rdtsc();
		uint64_t x = (t1 - t0) * 100 / 2000;
		if (x < best)
			best = x;
	}
	printf("bench: linux syscall_round_trip=%lu.%02lu instructions\n",
	       (unsigned long)(best / 100), (unsigned long)(best % 100));
	irq_from_user();
	return 0;
}
