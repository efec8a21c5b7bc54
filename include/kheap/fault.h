/*
 * kheap fault reporting: the one place misuse and corruption are reported.
 *
 * Every detected misuse (double free, foreign or interior pointer, a header
 * overwritten by an overrun) and every failed consistency check calls the
 * installed fault handler exactly once for that event. Detection is always
 * compiled in; it does not depend on NDEBUG or assertion settings.
 *
 * The default handler writes one line to stderr naming the fault, the heap and
 * the pointer, then calls abort(). A program (or a test) may install its own.
 * If a handler returns, the operation that detected the fault is abandoned
 * without touching the heap: a free does nothing (the block is leaked rather
 * than risking further corruption) and a realloc returns NULL.
 */
#ifndef KHEAP_FAULT_H
#define KHEAP_FAULT_H

#ifdef __cplusplus
extern "C" {
#endif

enum kheap_fault {
	/* The pointer lies outside the heap it was given to. */
	KHEAP_FAULT_FOREIGN_POINTER = 1,
	/* The pointer is inside the heap but not the start of a live block. */
	KHEAP_FAULT_INTERIOR_POINTER,
	/* The block was already freed (into the heap or a per-CPU cache). */
	KHEAP_FAULT_DOUBLE_FREE,
	/* The header after this block does not point back at it: the block
	 * (or something else) wrote past its end.
	 */
	KHEAP_FAULT_HEADER_OVERWRITTEN,
	/* A consistency check on heap metadata failed. */
	KHEAP_FAULT_CORRUPT_HEAP,
	/* The heap was used before a successful init, or after deinit. */
	KHEAP_FAULT_BAD_HEAP,
};

/*
 * Called with the fault, the heap (the `struct sys_heap *` or
 * `struct k_heap *` the caller passed; may be NULL), the offending pointer
 * (may be NULL) and a one-line, human-readable detail without a newline.
 * May be called from any thread, concurrently; it must be thread-safe. It
 * may run while the faulting heap's lock is held, so it must not call into
 * that heap.
 */
typedef void (*kheap_fault_handler_t)(enum kheap_fault fault, const void *heap, const void *ptr,
				      const char *detail);

/*
 * Installs `handler` for the whole process and returns the previous one.
 * NULL restores the default (print one line, abort). Thread-safe; a fault
 * raised concurrently sees either the old or the new handler.
 */
kheap_fault_handler_t kheap_set_fault_handler(kheap_fault_handler_t handler);

/* A short, stable name for `fault`, e.g. "double free". */
const char *kheap_fault_name(enum kheap_fault fault);

#ifdef __cplusplus
}
#endif

#endif
