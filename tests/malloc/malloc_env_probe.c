/*
 * Allocates from a preinit_array function, which runs before any
 * constructor and before libc has set environ, then reports in main.
 *
 * Linked with the malloc replacement (KHEAP_MALLOC_LINKED): prints the
 * region size that set-up chose, which shows whether it read
 * KHEAP_MALLOC_HEAP_SIZE that early, and whether the early block lies in
 * that region. Linked plainly (for LD_PRELOAD runs): prints whether the
 * early allocation succeeded and the early block could be freed.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KHEAP_MALLOC_LINKED
#include "malloc/kheap_malloc.h"
#endif

static char *early;

static void allocate_early(int argc, char **argv, char **envp)
{
	(void)argc;
	(void)argv;
	(void)envp;
	early = malloc(100);
	if (early != NULL)
		strcpy(early, "allocated before constructors");
}

__attribute__((section(".preinit_array"),
	       used)) static void (*const run_early)(int, char **, char **) = allocate_early;

int main(void)
{
#ifdef KHEAP_MALLOC_LINKED
	struct kheap_malloc_stats stats;
	struct k_heap *heap = kheap_malloc_heap();
	int early_in_heap = 0;

	if (kheap_malloc_stats_get(&stats) != 0)
		return 1;
	if (heap != NULL && early != NULL)
		early_in_heap =
		    (uintptr_t)early - (uintptr_t)heap->heap.init_mem < heap->heap.init_bytes;
	printf("heap_bytes=%zu early_in_heap=%d\n", stats.heap_bytes, early_in_heap);
#else
	printf("early allocation: %s\n", early != NULL ? early : "failed");
#endif
	free(early);
	return 0;
}
