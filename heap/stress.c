/*
 * sys_heap_stress: a seeded random workload against any alloc/free pair.
 *
 * Keeps the bytes in use near target_percent of total_bytes: below target it
 * mostly allocates, above it mostly frees, so the heap is driven repeatedly
 * into and out of fragmentation. Request sizes follow a power law (log2 of
 * the size is uniform), as small blocks dominate real workloads while large
 * ones do the fragmenting. Every block is filled with a pattern derived from
 * its address and size, checked again before it is freed.
 *
 * The scratch area holds the live-block table; its capacity bounds how many
 * blocks can be live at once.
 */
#include <string.h>

#include "heap/heap_internal.h"

struct live_block {
	void *mem;
	size_t bytes;
};

struct stress_rng {
	uint64_t state;
};

/* splitmix64: tiny, full-period, and good enough to drive a workload. */
static uint64_t stress_next(struct stress_rng *rng)
{
	uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t power_law_size(struct stress_rng *rng, size_t largest)
{
	unsigned int top = 0;
	size_t low;

	while (top < 63 && ((size_t)2 << top) <= largest)
		top++;
	low = (size_t)1 << (stress_next(rng) % (top + 1));
	return low + (size_t)(stress_next(rng) % low);
}

static uint8_t pattern_byte(const struct live_block *b, size_t i)
{
	return (uint8_t)(((uintptr_t)b->mem >> 3) ^ b->bytes ^ (i * 131u));
}

static void fill_block(const struct live_block *b)
{
	uint8_t *p = b->mem;

	for (size_t i = 0; i < b->bytes; i++)
		p[i] = pattern_byte(b, i);
}

static bool block_intact(const struct live_block *b)
{
	const uint8_t *p = b->mem;

	for (size_t i = 0; i < b->bytes; i++)
		if (p[i] != pattern_byte(b, i))
			return false;
	return true;
}

void sys_heap_stress_seeded(void *(*alloc_fn)(void *arg, size_t bytes),
			    void (*free_fn)(void *arg, void *p), void *arg, size_t total_bytes,
			    uint32_t op_count, void *scratch_mem, size_t scratch_bytes,
			    int target_percent, uint64_t seed, struct z_heap_stress_result *result)
{
	struct live_block *live = scratch_mem;
	size_t capacity = scratch_bytes / sizeof(*live);
	size_t live_count = 0, in_use = 0;
	size_t largest = total_bytes / 4 > 0 ? total_bytes / 4 : 1;
	struct stress_rng rng = {seed};

	memset(result, 0, sizeof(*result));
	for (uint32_t op = 0; op < op_count; op++) {
		size_t percent = total_bytes > 0 ? in_use * 100 / total_bytes : 100;
		bool below = percent < (size_t)(target_percent > 0 ? target_percent : 0);
		/* 7 in 8 ops go the way that approaches the target. */
		bool want_alloc = (stress_next(&rng) % 8 != 0) == below;

		if (live_count == capacity)
			want_alloc = false;
		else if (live_count == 0)
			want_alloc = true;

		if (want_alloc) {
			struct live_block b;

			b.bytes = power_law_size(&rng, largest);
			b.mem = alloc_fn(arg, b.bytes);
			result->total_allocs++;
			if (b.mem != NULL) {
				result->successful_allocs++;
				fill_block(&b);
				live[live_count++] = b;
				in_use += b.bytes;
			}
		} else {
			size_t pick = (size_t)(stress_next(&rng) % live_count);
			struct live_block b = live[pick];

			if (!block_intact(&b))
				kheap_raise_fault(
				    KHEAP_FAULT_CORRUPT_HEAP, arg, b.mem,
				    "stress: block contents changed while it was live");
			live[pick] = live[--live_count];
			free_fn(arg, b.mem);
			in_use -= b.bytes;
			result->total_frees++;
		}
		result->accumulated_in_use_bytes += in_use;
	}
	while (live_count > 0) {
		struct live_block b = live[--live_count];

		if (!block_intact(&b))
			kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, arg, b.mem,
					  "stress: block contents changed while it was live");
		free_fn(arg, b.mem);
	}
}

void sys_heap_stress(void *(*alloc_fn)(void *arg, size_t bytes),
		     void (*free_fn)(void *arg, void *p), void *arg, size_t total_bytes,
		     uint32_t op_count, void *scratch_mem, size_t scratch_bytes, int target_percent,
		     struct z_heap_stress_result *result)
{
	sys_heap_stress_seeded(alloc_fn, free_fn, arg, total_bytes, op_count, scratch_mem,
			       scratch_bytes, target_percent, 0x6b68656170ull, result);
}
