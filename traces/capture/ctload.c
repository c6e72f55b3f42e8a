/*
 * ctload -- small workloads for the real-kernel captures (static binary, no libc beyond glibc).
 *
 *   ctload faults MB ROUNDS     mmap MB of anonymous memory, touch every page, munmap; ROUNDS times
 *   ctload spin MS              spin in user mode for MS milliseconds (clock_gettime via the vDSO)
 *   ctload tlb MS CPU           thread A spins on CPU; the main thread (kept where it was started)
 *                               mprotect()s and munmap()s pages of the shared mm every 200 us,
 *                               which sends TLB-shootdown (call-function) IPIs to A's CPU
 *   ctload membarrier MS CPU    thread A spins on CPU; the main thread calls
 *                               membarrier(PRIVATE_EXPEDITED) every 200 us (IPIs to A's CPU)
 *
 * Why a program of our own: busybox has no loop that faults or provokes IPIs from another thread of
 * the same process, and the captures must show the kernel's accounting of exactly these paths.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static volatile int stop;
static volatile unsigned long sink;

static void spin_until(unsigned long long end)
{
	unsigned long i = 0;
	while (!stop && now_ns() < end)
		for (int k = 0; k < 1000; k++)
			sink = i++;
}

struct spinner { int cpu; unsigned long long end; };

static void *spinner_main(void *arg)
{
	struct spinner *s = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		perror("sched_setaffinity");
	spin_until(s->end);
	return NULL;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "faults")) {
		size_t len = (size_t)atol(argv[2]) << 20;
		long rounds = atol(argv[3]), pg = sysconf(_SC_PAGESIZE), n = 0;
		for (long r = 0; r < rounds; r++) {
			char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED) { perror("mmap"); return 1; }
			for (size_t off = 0; off < len; off += pg, n++)
				p[off] = 1;
			munmap(p, len);
		}
		printf("ctload: %ld page touches\n", n);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "spin")) {
		spin_until(now_ns() + atol(argv[2]) * 1000000ull);
		return 0;
	}
	if (argc >= 4 && (!strcmp(argv[1], "tlb") || !strcmp(argv[1], "membarrier"))) {
		int tlb = !strcmp(argv[1], "tlb");
		unsigned long long end = now_ns() + atol(argv[2]) * 1000000ull;
		struct spinner s = { atoi(argv[3]), end };
		long pg = sysconf(_SC_PAGESIZE), ops = 0;
		pthread_t t;
		if (!tlb && syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0)) {
			perror("membarrier register");
			return 1;
		}
		pthread_create(&t, NULL, spinner_main, &s);
		sleep_us(20000); /* let the spinner reach its CPU */
		while (now_ns() < end) {
			if (tlb) {
				char *p = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				for (int i = 0; i < 16; i++)
					p[i * pg] = 1;
				mprotect(p, 16 * pg, PROT_READ);
				munmap(p, 16 * pg);
			} else {
				syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
			}
			ops++;
			sleep_us(200);
		}
		stop = 1;
		pthread_join(t, NULL);
		printf("ctload: %ld %s operations\n", ops, argv[1]);
		return 0;
	}
	fprintf(stderr, "usage: ctload faults MB ROUNDS | spin MS | tlb MS CPU | membarrier MS CPU\n");
	return 2;
}
