/*
 * heapstress block patterns: fill and verify.
 *
 * Words are written and read with memcpy so the code does not depend on the
 * block's alignment beyond what the heap promises; the compiler turns each
 * into a single load or store. A tail shorter than a word holds the low
 * bytes of the next pattern word.
 */
#include "pattern.h"

#include <string.h>

#include "rng.h"

#define HS_PATTERN_STEP UINT64_C(0x9e3779b97f4a7c15)

uint64_t hs_pattern_key(uint64_t seed, uint64_t id)
{
	return hs_mix64(seed ^ hs_mix64(id));
}

static unsigned char hs_pattern_byte(uint64_t key, size_t offset)
{
	uint64_t word = key + (uint64_t)(offset / 8) * HS_PATTERN_STEP;

	return (unsigned char)(word >> (8 * (offset % 8)));
}

void hs_pattern_fill(void *mem, size_t bytes, uint64_t key)
{
	unsigned char *p = mem;
	uint64_t word = key;
	size_t i;

	for (i = 0; i + 8 <= bytes; i += 8) {
		memcpy(p + i, &word, sizeof(word));
		word += HS_PATTERN_STEP;
	}
	for (; i < bytes; i++) {
		p[i] = hs_pattern_byte(key, i);
	}
}

static bool hs_pattern_locate(const unsigned char *p, size_t from, size_t to, uint64_t key,
			      struct hs_mismatch *where)
{
	size_t i;

	for (i = from; i < to; i++) {
		if (p[i] != hs_pattern_byte(key, i)) {
			where->offset = i;
			where->expected = hs_pattern_byte(key, i);
			where->found = p[i];
			return false;
		}
	}
	return true;
}

bool hs_pattern_check(const void *mem, size_t bytes, uint64_t key, struct hs_mismatch *where)
{
	const unsigned char *p = mem;
	uint64_t word = key, found;
	size_t i;

	for (i = 0; i + 8 <= bytes; i += 8) {
		memcpy(&found, p + i, sizeof(found));
		if (found != word) {
			return hs_pattern_locate(p, i, i + 8, key, where);
		}
		word += HS_PATTERN_STEP;
	}
	return hs_pattern_locate(p, i, bytes, key, where);
}
