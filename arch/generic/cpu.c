/*
 * Current-CPU lookup and CPU count for Linux, shared by every arch.
 *
 * Each thread probes once for glibc's rseq registration and caches a pointer
 * to the kernel-maintained cpu_id field; after that the lookup is one TLS load
 * and one plain load. The kernel rewrites cpu_id on every migration, so the
 * value is as fresh as sched_getcpu() would be, and equally advisory.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/rseq.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"

__thread const volatile uint32_t *kheap_rseq_cpu_id;
__thread int kheap_rseq_probed;

static const volatile uint32_t *rseq_cpu_id_field(void)
{
	const struct rseq *area;

	/* The area must be large enough to hold cpu_id; RSEQ_CPU_ID_UNINITIALIZED
	 * (-1) means the kernel has not filled it, which happens when rseq
	 * registration failed for this thread.
	 */
	if (__rseq_size < sizeof(uint32_t) * 2)
		return NULL;
	area = (const struct rseq *)((const char *)__builtin_thread_pointer() + __rseq_offset);
	if ((int32_t)area->cpu_id < 0)
		return NULL;
	return (const volatile uint32_t *)&area->cpu_id;
}

int kheap_current_cpu_getcpu(void)
{
	int cpu = sched_getcpu();

	return cpu < 0 ? 0 : cpu;
}

int kheap_current_cpu_slow(void)
{
	if (!kheap_rseq_probed) {
		kheap_rseq_probed = 1;
		kheap_rseq_cpu_id = rseq_cpu_id_field();
		if (kheap_rseq_cpu_id != NULL)
			return (int)*kheap_rseq_cpu_id;
	}
	return kheap_current_cpu_getcpu();
}

enum kheap_cpu_lookup kheap_cpu_lookup_method(void)
{
	return rseq_cpu_id_field() != NULL ? KHEAP_CPU_LOOKUP_RSEQ : KHEAP_CPU_LOOKUP_GETCPU;
}

unsigned int kheap_cpu_count(void)
{
	long configured = sysconf(_SC_NPROCESSORS_CONF);

	return configured < 1 ? 1u : (unsigned int)configured;
}

uint64_t kheap_generic_cycles(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
