/*
 * Hooks for the shared-heap tests: they let a test child die at a chosen
 * point while holding a lock of a shared heap, so the recovery path of the
 * process that next takes the lock can be exercised. Only tests include this
 * header; nothing in the library calls these.
 */
#ifndef KHEAP_HEAP_SHARED_TESTING_H
#define KHEAP_HEAP_SHARED_TESTING_H

#include <stdbool.h>

#include <kheap/k_heap.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Takes the heap lock of `h` and returns holding it (the caller then dies). */
void kheap_testing_hold_heap_lock(struct k_heap *h);

/*
 * As kheap_testing_hold_heap_lock, then leaves a free chunk's size field
 * half written, which no recovery can undo: the next process to take the
 * lock must mark the heap broken.
 */
void kheap_testing_hold_heap_lock_mid_update(struct k_heap *h);

/*
 * As kheap_testing_hold_heap_lock, then leaves the free lists and counters
 * as a process killed in the middle of an allocation would: a free chunk
 * unlinked from its bucket, marked USED and untagged, with the byte counters
 * not yet updated. The next process to take the lock must repair this and
 * go on; the half-allocated chunk is freed again.
 */
void kheap_testing_hold_heap_lock_mid_alloc(struct k_heap *h);

/* Takes the cache lock of CPU slot `cpu` of `h` and returns holding it. */
void kheap_testing_hold_cache_lock(struct k_heap *h, unsigned int cpu);

/*
 * Pops one block from CPU slot `cpu`'s cache of `h` as a cache hit would,
 * stopping halfway: the block is unlinked but still marked cached. The
 * cache lock stays held either way; returns false if that cache held no
 * block.
 */
bool kheap_testing_hold_cache_lock_mid_pop(struct k_heap *h, unsigned int cpu);

/* The number of CPU caches `h` has (0 when its caches are off). */
unsigned int kheap_testing_cache_count(struct k_heap *h);

#ifdef __cplusplus
}
#endif

#endif
