/* The Linux side of the instruction-count benchmark (bench-linux.sh): on CPU 1, `getpid()`
 * round trips timed with rdtsc, which under QEMU `-icount shift=0` counts instructions.
 * The minimum over batches (a tick or other noise only ever adds). Static, no libc calls in
 * the loop: the raw `syscall` instruction, as the ctxtrack kernel's user program. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

static inline long sys_getpid(void)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(39L) : "rcx", "r11", "memory");
	return r;
}

int main(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("sched_setaffinity");
		return 1;
	}
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
	return 0;
}
