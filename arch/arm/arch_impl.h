/*
 * ARMv7-A (Cortex-A, 32-bit): YIELD as the spin hint. The cycle counter
 * (PMCCNTR) is not readable from user space by default, so the generic
 * CLOCK_MONOTONIC counter is used.
 */
#ifndef KHEAP_ARCH_ARM_ARCH_IMPL_H
#define KHEAP_ARCH_ARM_ARCH_IMPL_H

#define KHEAP_CACHE_LINE 64

#define KHEAP_HAVE_CPU_RELAX
static inline void kheap_cpu_relax(void)
{
	__asm__ __volatile__("yield" ::: "memory");
}

#include "arch/generic/arch_impl.h"

#endif
