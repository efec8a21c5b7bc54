/*
 * Hardening levels (enum sys_heap_hardening in <kheap/sys_heap.h>): the
 * trailer and poison fills of FULL, the whole-heap check of EXTREME, and
 * setting the level.
 *
 * Trailer layout (FULL and above). A block of R requested bytes gets a chunk
 * with room for R + 8; the last 8 usable bytes hold (R | tag << 40) ^
 * TRAILER_KEY, where tag is the owner tag of a shared heap's block (0
 * otherwise; R is below 2^40 because a heap is smaller than that), and
 * every byte between R and the trailer holds TRAILER_PAD. At free both must
 * be intact, so a write of even one byte past R is caught. The trailer's
 * position is fixed by the chunk size alone, so it is found without knowing
 * R; a decoded R larger than the room before the trailer is itself damage.
 *
 * Poison (FULL and above). A freed block is filled with POISON_BYTE before it
 * goes to a per-CPU cache or the free lists. A block a cache hands out again
 * must still be poisoned past its cache links; blocks merged in the free
 * lists are not re-checked (their headers and links land inside the fill).
 */
#include <errno.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "heap/k_heap_internal.h"

#define TRAILER_KEY	   0x6b6865617074726cull
#define TRAILER_PAD	   0xa5
#define POISON_BYTE	   0xdb
#define TRAILER_TAG_SHIFT  40
#define TRAILER_BYTES_MASK ((1ull << TRAILER_TAG_SHIFT) - 1)

static uint8_t *usable_end(const struct z_heap *h, chunkid_t c)
{
	return (uint8_t *)chunk_mem(h, c) + chunksz_to_bytes(h, chunk_size(h, c));
}

void z_heap_write_trailer(struct z_heap *h, chunkid_t c, size_t bytes)
{
	uint8_t *end = usable_end(h, c);
	uint64_t word = (uint64_t)bytes ^ TRAILER_KEY;
	uint8_t *mem = chunk_mem(h, c);

	memset(mem + bytes, TRAILER_PAD, (size_t)(end - Z_HEAP_TRAILER_BYTES - (mem + bytes)));
	/* The trailer may sit at a 4-byte boundary with 4-byte headers. */
	memcpy(end - Z_HEAP_TRAILER_BYTES, &word, sizeof(word));
}

static uint64_t trailer_word(const struct z_heap *h, chunkid_t c)
{
	uint64_t word;

	memcpy(&word, usable_end(h, c) - Z_HEAP_TRAILER_BYTES, sizeof(word));
	return word ^ TRAILER_KEY;
}

bool z_heap_trailer_intact(const struct z_heap *h, chunkid_t c, size_t *requested)
{
	const uint8_t *end = usable_end(h, c);
	const uint8_t *mem = chunk_mem(h, c);
	size_t room = (size_t)(end - mem) - Z_HEAP_TRAILER_BYTES;
	uint64_t word = trailer_word(h, c) & TRAILER_BYTES_MASK;
	size_t bytes;

	if (word > room)
		return false;
	bytes = (size_t)word;
	for (size_t i = bytes; i < room; i++)
		if (mem[i] != TRAILER_PAD)
			return false;
	if (requested != NULL)
		*requested = bytes;
	return true;
}

uint32_t z_heap_trailer_tag(const struct z_heap *h, chunkid_t c)
{
	if (!z_heap_trailer_intact(h, c, NULL))
		return 0;
	return (uint32_t)(trailer_word(h, c) >> TRAILER_TAG_SHIFT);
}

void z_heap_set_trailer_tag(struct z_heap *h, chunkid_t c, uint32_t tag)
{
	uint64_t word = (trailer_word(h, c) & TRAILER_BYTES_MASK) | (uint64_t)tag
									<< TRAILER_TAG_SHIFT;

	word ^= TRAILER_KEY;
	memcpy(usable_end(h, c) - Z_HEAP_TRAILER_BYTES, &word, sizeof(word));
}

void z_heap_poison_from(struct z_heap *h, chunkid_t c, size_t skip)
{
	uint8_t *mem = (uint8_t *)chunk_mem(h, c) + skip;

	memset(mem, POISON_BYTE, (size_t)(usable_end(h, c) - mem));
}

void z_heap_poison(struct z_heap *h, chunkid_t c)
{
	z_heap_poison_from(h, c, 0);
}

bool z_heap_poison_intact(const struct z_heap *h, chunkid_t c, size_t skip)
{
	const uint8_t *end = usable_end(h, c);

	for (const uint8_t *p = (const uint8_t *)chunk_mem(h, c) + skip; p < end; p++)
		if (*p != POISON_BYTE)
			return false;
	return true;
}

void z_heap_extreme_check(const struct z_heap *h)
{
	struct z_heap_walk_totals totals;
	const char *why;

	if (!z_heap_check_invariants(h, &totals, &why))
		kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, NULL, NULL, why);
}

int sys_heap_set_hardening(struct sys_heap *heap, enum sys_heap_hardening level)
{
	struct z_heap *h = heap_of(heap);

	if (h == NULL || (unsigned int)level > SYS_HEAP_HARDENING_EXTREME)
		return -EINVAL;
	if (h->owner_control != 0)
		return k_heap_set_hardening(k_heap_of(heap), level);
	if (h->allocated_bytes != 0)
		return -EBUSY;
	h->hardening = level;
	return 0;
}

enum sys_heap_hardening sys_heap_get_hardening(struct sys_heap *heap)
{
	struct z_heap *h = heap_of(heap);

	return h == NULL ? SYS_HEAP_HARDENING_NONE : (enum sys_heap_hardening)h->hardening;
}
