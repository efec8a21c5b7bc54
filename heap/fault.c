/*
 * The process-wide fault handler and the default one.
 *
 * The handler pointer is read and swapped atomically, so a fault raised
 * on one core while another installs a handler sees one or the other, never
 * a torn value. The default handler formats into a local buffer and writes
 * the line with a single write(2), so lines from concurrent faults do not
 * interleave, then aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "heap/heap_internal.h"
#include "smp/atomic.h"

static void default_fault_handler(enum kheap_fault fault, const void *heap, const void *ptr,
				  const char *detail)
{
	char line[256];
	int length = snprintf(line, sizeof(line), "kheap: %s: heap %p, pointer %p: %s\n",
			      kheap_fault_name(fault), heap, ptr, detail);

	if (length > 0) {
		size_t n = (size_t)length < sizeof(line) ? (size_t)length : sizeof(line) - 1;

		if (write(STDERR_FILENO, line, n) < 0)
			abort();
	}
	abort();
}

/* A kheap_fault_handler_t, stored as void * for the atomic helpers. */
static void *installed_handler;

kheap_fault_handler_t kheap_set_fault_handler(kheap_fault_handler_t handler)
{
	kheap_fault_handler_t previous =
	    (kheap_fault_handler_t)kheap_swap_ptr(&installed_handler, (void *)handler);

	return previous == NULL ? default_fault_handler : previous;
}

const char *kheap_fault_name(enum kheap_fault fault)
{
	switch (fault) {
	case KHEAP_FAULT_FOREIGN_POINTER:
		return "foreign pointer";
	case KHEAP_FAULT_INTERIOR_POINTER:
		return "interior pointer";
	case KHEAP_FAULT_DOUBLE_FREE:
		return "double free";
	case KHEAP_FAULT_HEADER_OVERWRITTEN:
		return "header overwritten";
	case KHEAP_FAULT_CORRUPT_HEAP:
		return "corrupt heap";
	case KHEAP_FAULT_BAD_HEAP:
		return "bad heap";
	}
	return "unknown fault";
}

void kheap_raise_fault(enum kheap_fault fault, const void *heap, const void *ptr,
		       const char *detail)
{
	kheap_fault_handler_t handler =
	    (kheap_fault_handler_t)kheap_load_acquire_ptr(&installed_handler);

	if (handler == NULL || handler == default_fault_handler)
		default_fault_handler(fault, heap, ptr, detail);
	else
		handler(fault, heap, ptr, detail);
}
