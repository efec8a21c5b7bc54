/*
 * Hooks that let tests reach layouts the default policy would not pick on
 * this host. Only tests include this header.
 *
 * The chunk header width is normally chosen by sys_heap_init: 4 bytes on
 * 32-bit targets for heaps under 16384 chunk units, 8 bytes otherwise. The
 * small format is exercised on 64-bit hosts by forcing it here; user memory
 * stays 8-byte aligned in both formats.
 */
#ifndef KHEAP_HEAP_TESTING_H
#define KHEAP_HEAP_TESTING_H

#include <stddef.h>

#include <kheap/sys_heap.h>

#ifdef __cplusplus
extern "C" {
#endif

enum z_heap_header_width {
	Z_HEAP_HEADER_AUTO,
	Z_HEAP_HEADER_SMALL,
	Z_HEAP_HEADER_BIG,
};

/*
 * sys_heap_init with a forced header width. Z_HEAP_HEADER_SMALL is refused
 * with -EINVAL when the region, counted from its first 8-byte-aligned chunk
 * start, holds more than 16383 chunk units.
 */
int z_heap_init_with_headers(struct sys_heap *heap, void *mem, size_t bytes,
			     enum z_heap_header_width width);

/* The header width of an initialised heap, in bytes (4 or 8). */
size_t z_heap_header_bytes(const struct sys_heap *heap);

#ifdef __cplusplus
}
#endif

#endif
