/*
 * ARMv8-A (Cortex-A, aarch64): the generic timer's virtual count as cycle
 * counter (readable from EL0 on Linux), and YIELD as the spin hint. Cortex-A
 * cores use 64-byte cache lines.
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
