/*
 * The system heap behind k_malloc and friends.
 *
 * One statically defined k_heap, initialised on first use. Its size is fixed
 * at build time (KHEAP_SYSTEM_HEAP_SIZE); the region sits in .bss, so pages
 * the program never touches cost nothing. None of these calls blocks: they
 * all pass K_NO_WAIT, as Zephyr's do.
 */
#include <kheap/k_heap.h>

#ifndef KHEAP_SYSTEM_HEAP_SIZE
#define KHEAP_SYSTEM_HEAP_SIZE (16u * 1024u * 1024u)
#endif

K_HEAP_DEFINE(kheap_system_heap, KHEAP_SYSTEM_HEAP_SIZE);

struct k_heap *k_system_heap(void)
{
	return &kheap_system_heap;
}

void *k_malloc(size_t size)
{
	return k_heap_alloc(&kheap_system_heap, size, K_NO_WAIT);
}

void *k_calloc(size_t nmemb, size_t size)
{
	return k_heap_calloc(&kheap_system_heap, nmemb, size, K_NO_WAIT);
}

void *k_aligned_alloc(size_t align, size_t size)
{
	return k_heap_aligned_alloc(&kheap_system_heap, align, size, K_NO_WAIT);
}

void *k_realloc(void *ptr, size_t size)
{
	return k_heap_realloc(&kheap_system_heap, ptr, size, K_NO_WAIT);
}

void k_free(void *ptr)
{
	k_heap_free(&kheap_system_heap, ptr);
}
