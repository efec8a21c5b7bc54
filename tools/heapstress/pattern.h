/*
 * heapstress block patterns: what every live block holds while a thread owns it.
 *
 * A block's pattern is a stream of 64-bit words derived from one key (the
 * run's seed hashed with the block's id): word i is key + i * step. Blocks
 * get distinct keys, so two blocks that overlap, a stale write after free or
 * a shifted copy all show up as a mismatch at a precise byte.
 */
#ifndef HEAPSTRESS_PATTERN_H
#define HEAPSTRESS_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hs_mismatch {
	size_t offset;
	unsigned char expected;
	unsigned char found;
};

/* The key of block `id` in a run seeded with `seed`. */
uint64_t hs_pattern_key(uint64_t seed, uint64_t id);

/* Writes the pattern for `key` over bytes [0, bytes) of `mem`. */
void hs_pattern_fill(void *mem, size_t bytes, uint64_t key);

/* True when [0, bytes) of `mem` holds the pattern; else fills `where`. */
bool hs_pattern_check(const void *mem, size_t bytes, uint64_t key, struct hs_mismatch *where);

#endif
