/*
 * Measures what the malloc replacement's two size thresholds trade off, to
 * choose them (the figures and the choice are in malloc/malloc.c).
 *
 * For each block size, `threads` threads repeat: get a block, write one
 * byte in every page of it (a program that uses its memory), give it back.
 * Three ways to get and give back a block:
 *   heap      k_heap_alloc / k_heap_free on one k_heap over a reserved
 *             region, pages kept (what a heap block below the release
 *             threshold costs);
 *   release   the same, plus madvise(MADV_DONTNEED) on the block's whole
 *             pages before the free (a heap block above it);
 *   lazy      the same with MADV_FREE, which lets the kernel take the pages
 *             only under memory pressure;
 *   mmap      a private mapping per block, munmap to give it back (a block
 *             above the mmap threshold).
 * Prints nanoseconds per cycle (the best of `repeats` runs) and, for the
 * heap, the resident memory after the runs.
 *
 * Usage: malloc_threshold_bench [threads] [repeats]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <kheap/k_heap.h>

#define REGION_BYTES ((size_t)4 << 30)
#define TARGET_BYTES ((size_t)512 << 20)

enum method { HEAP, RELEASE, LAZY, MAPPED, METHODS };

static const char *const method_names[] = {"heap", "release", "lazy", "mmap"};

struct run {
	struct k_heap *heap;
	enum method method;
	size_t bytes;
	unsigned long cycles;
	pthread_barrier_t *start;
	double elapsed_ns;
};

static size_t page_bytes;

static void touch(uint8_t *block, size_t bytes)
{
	for (size_t offset = 0; offset < bytes; offset += page_bytes)
		block[offset] = (uint8_t)offset;
	block[bytes - 1] = 1;
}

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void release(uint8_t *block, size_t bytes, int advice)
{
	uintptr_t first = ((uintptr_t)block + page_bytes - 1) & ~(uintptr_t)(page_bytes - 1);
	uintptr_t last = ((uintptr_t)block + bytes) & ~(uintptr_t)(page_bytes - 1);

	if (last > first)
		madvise((void *)first, last - first, advice);
}

static void *cycle(void *arg)
{
	struct run *run = arg;
	double begin;

	pthread_barrier_wait(run->start);
	begin = now_ns();
	for (unsigned long i = 0; i < run->cycles; i++) {
		uint8_t *block;

		if (run->method == MAPPED) {
			block = mmap(NULL, run->bytes, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (block == MAP_FAILED)
				abort();
			touch(block, run->bytes);
			munmap(block, run->bytes);
			continue;
		}
		block = k_heap_alloc(run->heap, run->bytes, K_NO_WAIT);
		if (block == NULL)
			abort();
		touch(block, run->bytes);
		if (run->method == RELEASE)
			release(block, run->bytes, MADV_DONTNEED);
		if (run->method == LAZY)
			release(block, run->bytes, MADV_FREE);
		k_heap_free(run->heap, block);
	}
	run->elapsed_ns = now_ns() - begin;
	return NULL;
}

static long resident_kib(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (status == NULL)
		return -1;
	while (fgets(line, sizeof(line), status) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(status);
	return kib;
}

static double measure(struct k_heap *heap, enum method method, size_t bytes, int threads)
{
	pthread_t ids[64];
	struct run runs[64];
	pthread_barrier_t start;
	unsigned long cycles = TARGET_BYTES / bytes / (unsigned long)threads;
	double slowest = 0;

	if (cycles < 16)
		cycles = 16;
	pthread_barrier_init(&start, NULL, (unsigned int)threads + 1);
	for (int t = 0; t < threads; t++) {
		runs[t] = (struct run){heap, method, bytes, cycles, &start, 0};
		pthread_create(&ids[t], NULL, cycle, &runs[t]);
	}
	pthread_barrier_wait(&start);
	for (int t = 0; t < threads; t++) {
		pthread_join(ids[t], NULL);
		if (runs[t].elapsed_ns > slowest)
			slowest = runs[t].elapsed_ns;
	}
	pthread_barrier_destroy(&start);
	return slowest / (double)cycles;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {64u << 10, 128u << 10, 256u << 10, 512u << 10, 1u << 20,
				       2u << 20,  4u << 20,   16u << 20,  64u << 20};
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	int repeats = argc > 2 ? atoi(argv[2]) : 3;
	struct k_heap heap;
	void *region;

	if (threads < 1 || threads > 64 || repeats < 1) {
		fprintf(stderr, "usage: %s [threads 1..64] [repeats]\n", argv[0]);
		return 2;
	}
	page_bytes = (size_t)sysconf(_SC_PAGESIZE);
	region = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (region == MAP_FAILED || k_heap_init(&heap, region, REGION_BYTES) != 0) {
		fprintf(stderr, "cannot set up a %zu-byte heap\n", REGION_BYTES);
		return 1;
	}
	printf("%d threads, best of %d runs, ns per cycle (heap RSS after the runs)\n", threads,
	       repeats);
	printf("%8s %14s %14s %14s %9s\n", "size", method_names[HEAP], method_names[RELEASE],
	       method_names[LAZY], method_names[MAPPED]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		double best[METHODS];
		long rss[METHODS];

		for (int m = HEAP; m < METHODS; m++) {
			best[m] = 0;
			for (int r = 0; r < repeats; r++) {
				double ns = measure(&heap, (enum method)m, sizes[i], threads);

				if (r == 0 || ns < best[m])
					best[m] = ns;
			}
			rss[m] = resident_kib();
			if (k_heap_deinit(&heap) != 0)
				abort();
			madvise(region, REGION_BYTES, MADV_DONTNEED);
			if (k_heap_init(&heap, region, REGION_BYTES) != 0)
				abort();
		}
		printf("%7zuK %8.0f (%3ldM) %8.0f (%3ldM) %8.0f (%3ldM) %9.0f\n", sizes[i] >> 10,
		       best[HEAP], rss[HEAP] >> 10, best[RELEASE], rss[RELEASE] >> 10, best[LAZY],
		       rss[LAZY] >> 10, best[MAPPED]);
	}
	return 0;
}
