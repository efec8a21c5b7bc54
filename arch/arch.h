/*
 * The one dispatcher for per-architecture primitives that CK does not give.
 *
 * Each arch folder defines only what differs (a cycle counter, a cache-line
 * size) and then includes the generic layer, which fills every gap with
 * portable C11/Linux code. The folder is picked by a single select() in
 * arch/BUILD, which sets exactly one KHEAP_ARCH_* macro; with none set the
 * generic layer alone is used, so an unknown target still builds.
 *
 * Provided to smp/ and heap/:
 *   KHEAP_CACHE_LINE          bytes per cache line (a constant expression)
 *   kheap_cpu_relax()         politeness hint inside a spin loop
 *   kheap_cycles()            a monotonic, cheap cycle or tick counter
 *   kheap_current_cpu()       the CPU this thread ran on a moment ago
 *   kheap_cpu_count()         CPUs the system may ever have online
 */
#ifndef KHEAP_ARCH_ARCH_H
#define KHEAP_ARCH_ARCH_H

#if defined(KHEAP_ARCH_X86_64)
#include "arch/x86_64/arch_impl.h"
#elif defined(KHEAP_ARCH_AARCH64)
#include "arch/aarch64/arch_impl.h"
#elif defined(KHEAP_ARCH_ARM)
#include "arch/arm/arch_impl.h"
#else
#include "arch/generic/arch_impl.h"
#endif

#endif
