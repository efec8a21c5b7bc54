/*
 * Portable fallbacks for every arch primitive (C11, Linux, CK).
 *
 * An arch header defines the KHEAP_HAVE_* macro for each primitive it
 * provides before including this file; whatever it leaves undefined is
 * filled here. Current-CPU lookup is the same on every Linux target: the
 * kernel's rseq area (registered by glibc) gives it with one TLS load, and
 * sched_getcpu() is the fallback when rseq is not registered. The answer
 * may be stale by the time it is used; callers must tolerate migration.
 */
#ifndef KHEAP_ARCH_GENERIC_ARCH_IMPL_H
#define KHEAP_ARCH_GENERIC_ARCH_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#ifndef KHEAP_CACHE_LINE
#define KHEAP_CACHE_LINE 64
#endif

#ifndef KHEAP_HAVE_CPU_RELAX
static inline void kheap_cpu_relax(void)
{
	ck_pr_stall();
}
#endif

/* Nanoseconds from CLOCK_MONOTONIC: slower than a register read, but exact. */
uint64_t kheap_generic_cycles(void);

#ifndef KHEAP_HAVE_CYCLES
static inline uint64_t kheap_cycles(void)
{
	return kheap_generic_cycles();
}
#endif

/*
 * How the current CPU is found; exposed so the benchmark can compare them.
 * KHEAP_CPU_LOOKUP_RSEQ is used whenever the kernel area is registered.
 */
enum kheap_cpu_lookup {
	KHEAP_CPU_LOOKUP_RSEQ,
	KHEAP_CPU_LOOKUP_GETCPU,
};

/* Pointer to this thread's rseq cpu_id field, or NULL when unregistered. */
extern __thread const volatile uint32_t *kheap_rseq_cpu_id;
extern __thread int kheap_rseq_probed;

int kheap_current_cpu_slow(void);
int kheap_current_cpu_getcpu(void);
enum kheap_cpu_lookup kheap_cpu_lookup_method(void);
unsigned int kheap_cpu_count(void);

/*
 * The current CPU through rseq alone: false when this thread has no rseq
 * area (or has not looked for one yet), and the caller must use
 * kheap_current_cpu(). Lets a hot path keep its only call out of line.
 */
static inline bool kheap_current_cpu_rseq(uint32_t *cpu)
{
	const volatile uint32_t *cpu_id = kheap_rseq_cpu_id;

	if (__builtin_expect(cpu_id == NULL, 0))
		return false;
	*cpu = *cpu_id;
	return true;
}

static inline int kheap_current_cpu(void)
{
	const volatile uint32_t *cpu_id = kheap_rseq_cpu_id;

	if (__builtin_expect(cpu_id != NULL, 1))
		return (int)*cpu_id;
	return kheap_current_cpu_slow();
}

#endif
