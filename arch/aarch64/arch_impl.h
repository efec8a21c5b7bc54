/*
 * ARMv8-A (Cortex-A, aarch64): the generic timer's virtual count as cycle
 * counter (readable from EL0 on Linux), and YIELD as the spin hint. Cortex-A
 * cores use 64-byte cache lines.
 *
 * Atomics: LL/SC, not LSE. CK's aarch64 ck_pr uses exclusive load/store
 * loops unless CK_MD_LSE_ENABLE is set, and Debian's ck_md.h sets
 * CK_MD_LSE_DISABLE (CK 0.7.1's LSE header does not even compile). LSE
 * instructions would fault on ARMv8.0 cores such as Cortex-A53/A72, and the
 * hot paths here are per-CPU and rarely contended, which is where LSE gains
 * least. The compiler's own __atomic builtins (tests, ThreadSanitizer builds)
 * use -moutline-atomics and pick LSE at run time where the core has it.
 */
#ifndef KHEAP_ARCH_AARCH64_ARCH_IMPL_H
#define KHEAP_ARCH_AARCH64_ARCH_IMPL_H

#include <stdint.h>

#define KHEAP_CACHE_LINE 64

#define KHEAP_HAVE_CYCLES
static inline uint64_t kheap_cycles(void)
{
	uint64_t count;

	/* The ISB keeps the read from being hoisted above earlier work. */
	__asm__ __volatile__("isb; mrs %0, cntvct_el0" : "=r"(count)::"memory");
	return count;
}

#define KHEAP_HAVE_CPU_RELAX
static inline void kheap_cpu_relax(void)
{
	__asm__ __volatile__("yield" ::: "memory");
}

#include "arch/generic/arch_impl.h"

#endif
