/*
 * The contents the shared-heap tests give every block, so that any process
 * can check a block another process filled: the first 8 bytes are a stamp
 * (the allocating process's owner tag in the high half, a per-process serial
 * in the low half) and every later byte is a function of the stamp and its
 * index. A checker needs only the block, its usable size and the owner tag
 * the heap reports for it.
 *
 * Invariant: shared_heap_check(mem, n, tag) holds for every n <= the filled
 * size as long as nothing else wrote to the block, so the kept prefix of a
 * reallocated block still checks. C11 and C++17 both include this header.
 */
#ifndef KHEAP_TESTS_HEAP_SHARED_HEAP_PATTERN_H
#define KHEAP_TESTS_HEAP_SHARED_HEAP_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The smallest block the pattern fits: the stamp. */
#define SHARED_HEAP_STAMP_BYTES 8u

static inline uint64_t shared_heap_stamp(uint32_t tag, uint32_t serial)
{
	return ((uint64_t)tag << 32) | serial;
}

static inline uint32_t shared_heap_stamp_tag(uint64_t stamp)
{
	return (uint32_t)(stamp >> 32);
}

/* The 8 pattern bytes of word `index` (counted from the block's start). */
static inline uint64_t shared_heap_pattern_word(uint64_t stamp, size_t index)
{
	uint64_t x = stamp ^ ((uint64_t)index * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x;
}

/* Fills `bytes` (at least the stamp) at `mem` for owner `tag`. */
static inline void shared_heap_fill(void *mem, size_t bytes, uint32_t tag, uint32_t serial)
{
	uint8_t *p = (uint8_t *)mem;
	uint64_t stamp = shared_heap_stamp(tag, serial);

	uint64_t word = 0;

	memcpy(p, &stamp, sizeof(stamp));
	for (size_t i = SHARED_HEAP_STAMP_BYTES; i < bytes; i++) {
		if (i % 8 == 0)
			word = shared_heap_pattern_word(stamp, i / 8);
		p[i] = (uint8_t)(word >> ((i % 8) * 8));
	}
}

/* The stamp at the start of a filled block. */
static inline uint64_t shared_heap_read_stamp(const void *mem)
{
	uint64_t stamp;

	memcpy(&stamp, mem, sizeof(stamp));
	return stamp;
}

/* True when the first `bytes` at `mem` are what owner `tag` filled. */
static inline bool shared_heap_check(const void *mem, size_t bytes, uint32_t tag)
{
	const uint8_t *p = (const uint8_t *)mem;
	uint64_t stamp;
	uint64_t word = 0;

	if (bytes < SHARED_HEAP_STAMP_BYTES)
		return false;
	stamp = shared_heap_read_stamp(mem);
	if (shared_heap_stamp_tag(stamp) != tag)
		return false;
	for (size_t i = SHARED_HEAP_STAMP_BYTES; i < bytes; i++) {
		if (i % 8 == 0)
			word = shared_heap_pattern_word(stamp, i / 8);
		if (p[i] != (uint8_t)(word >> ((i % 8) * 8)))
			return false;
	}
	return true;
}

#endif
