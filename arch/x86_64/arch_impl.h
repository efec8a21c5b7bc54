/*
 * x86_64: the TSC as cycle counter; everything else is generic. The TSC is
 * invariant on every x86_64 part this project targets, so deltas taken on
 * different cores are comparable.
 */
#ifndef KHEAP_ARCH_X86_64_ARCH_IMPL_H
#define KHEAP_ARCH_X86_64_ARCH_IMPL_H

#include <stdint.h>

#define KHEAP_CACHE_LINE 64

#define KHEAP_HAVE_CYCLES
static inline uint64_t kheap_cycles(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

#include "arch/generic/arch_impl.h"

#endif
