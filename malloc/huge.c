/*
 * Blocks mapped on their own: requests of KHEAP_MALLOC_MMAP_THRESHOLD bytes
 * or more, and alignments that large.
 *
 * Each block is one private anonymous mapping whose first byte is the user
 * pointer: for an alignment above the page size the mapping is made larger
 * and the unaligned head and the tail are unmapped again. The block carries
 * no header; instead a table maps each user pointer to its mapping length.
 * That table is what lets free() tell one of these blocks from a pointer
 * this allocator never handed out, without reading memory at an address
 * that may not be mapped.
 *
 * The table: open addressing with linear probing over a power-of-two array
 * of (address, length) slots, at most half full, address 0 marking an empty
 * slot; removal shifts later members of the probe run back, so no
 * tombstones build up. It lives in its own mapping (never in the heap, so
 * it works whether or not the heap exists) and doubles when it would pass
 * half full. One mutex guards it and the counters; no system call that maps
 * or unmaps a block is made under it. Removing an entry before unmapping
 * (and inserting only after mapping) means two racing frees of one pointer
 * cannot both unmap it: the second finds nothing and reports a fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "malloc/malloc_internal.h"

#define TABLE_MIN_SLOTS 256

struct huge_slot {
	uintptr_t address;
	size_t length;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct huge_slot *table;
static size_t table_slots;
static size_t live_blocks;
static size_t live_bytes;
static uint64_t mapped_total;

static size_t slot_of(uintptr_t address, size_t slots)
{
	uint64_t page = (uint64_t)(address >> 12);

	return (size_t)((page * 0x9e3779b97f4a7c15ull) >> 32) & (slots - 1);
}

static void place(struct huge_slot *slots, size_t count, uintptr_t address, size_t length)
{
	size_t i = slot_of(address, count);

	while (slots[i].address != 0)
		i = (i + 1) & (count - 1);
	slots[i].address = address;
	slots[i].length = length;
}

/* Makes room for one more entry; lock held. False if no memory for it. */
static bool reserve_slot(void)
{
	size_t count = table_slots == 0 ? TABLE_MIN_SLOTS : table_slots * 2;
	struct huge_slot *grown;

	if ((live_blocks + 1) * 2 <= table_slots)
		return true;
	grown = mmap(NULL, count * sizeof(*grown), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (grown == MAP_FAILED)
		return false;
	for (size_t i = 0; i < table_slots; i++)
		if (table[i].address != 0)
			place(grown, count, table[i].address, table[i].length);
	if (table != NULL)
		munmap(table, table_slots * sizeof(*table));
	table = grown;
	table_slots = count;
	return true;
}

/* Index of `address` in the table, or table_slots; lock held. */
static size_t find(uintptr_t address)
{
	if (table_slots == 0 || address == 0)
		return table_slots;
	for (size_t i = slot_of(address, table_slots);; i = (i + 1) & (table_slots - 1)) {
		if (table[i].address == address)
			return i;
		if (table[i].address == 0)
			return table_slots;
	}
}

/* Empties slot `hole`; lock held. Backward shift: every later member of the
 * run whose home slot does not lie (cyclically) after the hole moves into
 * it, so every lookup still reaches its entry before an empty slot.
 */
static void remove_at(size_t hole)
{
	size_t mask = table_slots - 1;

	live_blocks--;
	live_bytes -= table[hole].length;
	for (size_t i = (hole + 1) & mask; table[i].address != 0; i = (i + 1) & mask) {
		size_t home = slot_of(table[i].address, table_slots);

		if (((i - home) & mask) >= ((i - hole) & mask)) {
			table[hole] = table[i];
			hole = i;
		}
	}
	table[hole].address = 0;
	table[hole].length = 0;
}

static void add(uintptr_t address, size_t length)
{
	place(table, table_slots, address, length);
	live_blocks++;
	live_bytes += length;
}

/* Removes the entry for `address`; returns its length, 0 if absent. */
static size_t take(uintptr_t address)
{
	size_t length = 0, i;

	pthread_mutex_lock(&table_lock);
	i = find(address);
	if (i != table_slots) {
		length = table[i].length;
		remove_at(i);
	}
	pthread_mutex_unlock(&table_lock);
	return length;
}

void *kheap_huge_alloc(size_t bytes, size_t align)
{
	size_t page = kheap_malloc_page_bytes, length, extra = 0;
	uint8_t *base, *start;
	bool registered;

	if (align < page)
		align = page;
	if (bytes == 0 || !kheap_malloc_page_round(bytes, &length) ||
	    __builtin_add_overflow(length, align - page, &extra) || extra > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	base = mmap(NULL, extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	start = (uint8_t *)(((uintptr_t)base + align - 1) & ~(uintptr_t)(align - 1));
	if (start != base)
		munmap(base, (size_t)(start - base));
	if (start + length != base + extra)
		munmap(start + length, (size_t)(base + extra - (start + length)));
	pthread_mutex_lock(&table_lock);
	registered = reserve_slot();
	if (registered) {
		add((uintptr_t)start, length);
		mapped_total++;
	}
	pthread_mutex_unlock(&table_lock);
	if (!registered) {
		munmap(start, length);
		errno = ENOMEM;
		return NULL;
	}
	return start;
}

bool kheap_huge_free(void *p)
{
	size_t length = take((uintptr_t)p);

	if (length == 0)
		return false;
	munmap(p, length);
	return true;
}

size_t kheap_huge_usable_size(const void *p)
{
	size_t length = 0, i;

	pthread_mutex_lock(&table_lock);
	i = find((uintptr_t)p);
	if (i != table_slots)
		length = table[i].length;
	pthread_mutex_unlock(&table_lock);
	return length;
}

void *kheap_huge_resize(void *p, size_t bytes, bool *found)
{
	size_t old_length = kheap_huge_usable_size(p), length, i;
	void *moved;

	*found = old_length != 0;
	if (old_length == 0)
		return NULL;
	if (!kheap_malloc_page_round(bytes, &length) || length > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if (length == old_length)
		return p;
	moved = mremap(p, old_length, length, MREMAP_MAYMOVE);
	if (moved == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	/* Replace the entry in one hold: removing first leaves room, so the
	 * table never needs to grow (and cannot fail) here.
	 */
	pthread_mutex_lock(&table_lock);
	i = find((uintptr_t)p);
	if (i != table_slots)
		remove_at(i);
	add((uintptr_t)moved, length);
	pthread_mutex_unlock(&table_lock);
	return moved;
}

void kheap_huge_stats(struct kheap_malloc_stats *stats)
{
	pthread_mutex_lock(&table_lock);
	stats->mapped_blocks = live_blocks;
	stats->mapped_bytes = live_bytes;
	stats->mapped_total = mapped_total;
	pthread_mutex_unlock(&table_lock);
}

void kheap_huge_fork_prepare(void)
{
	pthread_mutex_lock(&table_lock);
}

void kheap_huge_fork_release(void)
{
	pthread_mutex_unlock(&table_lock);
}
