/*
 * A multi-threaded program that leans on the C allocator, for comparing a
 * run on the system allocator with a run under LD_PRELOAD of
 * libkheap_malloc.so. Its standard output depends only on its arguments,
 * never on thread timing, so the two runs must print the same thing.
 *
 * Waves of threads each build a hash table of strings with malloc, realloc
 * and free, hand every third string to a shared queue, and exit; the main
 * thread (and later waves) free what the queue holds after checking it.
 * Every string's bytes are a function of its key, so each check is exact.
 * Also asks for zeroed, aligned and large blocks.
 *
 * Prints "threads=T waves=W strings=N bytes=B checksum=C damaged=D" on
 * stdout, and on stderr whether libkheap_malloc is mapped in the process
 * (from /proc/self/maps), so a caller can tell the preload took effect.
 *
 * Usage: malloc_threads [threads_per_wave] [waves] [strings_per_thread]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	uint64_t key;
	size_t length;
	char *text;
};

struct handed {
	uint64_t key;
	size_t length;
	char *text;
};

struct queue {
	pthread_mutex_t lock;
	struct handed *items;
	size_t count;
	size_t capacity;
};

struct worker {
	unsigned int id;
	unsigned int strings;
	struct queue *queue;
	uint64_t checksum;
	uint64_t bytes;
	unsigned long damaged;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static char text_byte(uint64_t key, size_t i)
{
	return (char)('a' + (mix(key + i) % 26));
}

/* A string of a key-determined length and content, grown by realloc. */
static char *make_text(uint64_t key, size_t *length)
{
	size_t want = 1 + mix(key) % 700, have = 0, room = 8;
	char *text = malloc(room);

	if (text == NULL)
		return NULL;
	while (have < want) {
		if (have + 1 >= room) {
			char *grown = realloc(text, room * 2);

			if (grown == NULL) {
				free(text);
				return NULL;
			}
			text = grown;
			room *= 2;
		}
		text[have] = text_byte(key, have);
		have++;
	}
	text[have] = '\0';
	*length = have;
	return text;
}

static unsigned long check_text(uint64_t key, const char *text, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (text[i] != text_byte(key, i))
			return 1;
	return text[length] != '\0';
}

static int push(struct queue *queue, struct handed item)
{
	int ok = 1;

	pthread_mutex_lock(&queue->lock);
	if (queue->count == queue->capacity) {
		size_t capacity = queue->capacity == 0 ? 64 : queue->capacity * 2;
		struct handed *grown = realloc(queue->items, capacity * sizeof(*grown));

		if (grown == NULL) {
			ok = 0;
		} else {
			queue->items = grown;
			queue->capacity = capacity;
		}
	}
	if (ok)
		queue->items[queue->count++] = item;
	pthread_mutex_unlock(&queue->lock);
	return ok;
}

/* Frees up to `most` handed strings, checking each. */
static unsigned long drain(struct queue *queue, size_t most)
{
	unsigned long damaged = 0;

	pthread_mutex_lock(&queue->lock);
	while (queue->count > 0 && most-- > 0) {
		struct handed item = queue->items[--queue->count];

		damaged += check_text(item.key, item.text, item.length);
		free(item.text);
	}
	pthread_mutex_unlock(&queue->lock);
	return damaged;
}

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	size_t buckets = 64;
	struct entry **table = calloc(buckets, sizeof(*table));
	void *aligned = NULL;

	if (table == NULL || posix_memalign(&aligned, 256, 4096) != 0) {
		w->damaged++;
		free(table);
		return NULL;
	}
	memset(aligned, 0x11, 4096);
	for (unsigned int i = 0; i < w->strings; i++) {
		uint64_t key = (uint64_t)w->id << 32 | i;
		struct entry *e = malloc(sizeof(*e));
		size_t length = 0;

		if (e == NULL || (e->text = make_text(key, &length)) == NULL) {
			free(e);
			w->damaged++;
			continue;
		}
		e->key = key;
		e->length = length;
		e->next = table[key % buckets];
		table[key % buckets] = e;
		w->checksum += mix(key) ^ length;
		w->bytes += length;
		if (i % 3 == 0) {
			table[key % buckets] = e->next;
			if (!push(w->queue, (struct handed){e->key, e->length, e->text})) {
				free(e->text);
				w->damaged++;
			}
			free(e);
		}
		if (i % 97 == 0)
			w->damaged += drain(w->queue, 8);
	}
	if (w->strings > 0) {
		char *big = calloc(1, (size_t)3 << 20);

		if (big == NULL || big[((size_t)3 << 20) - 1] != 0)
			w->damaged++;
		free(big);
	}
	for (size_t b = 0; b < buckets; b++) {
		while (table[b] != NULL) {
			struct entry *e = table[b];

			table[b] = e->next;
			w->damaged += check_text(e->key, e->text, e->length);
			free(e->text);
			free(e);
		}
	}
	free(table);
	free(aligned);
	return NULL;
}

static int kheap_malloc_mapped(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[4096];
	int found = 0;

	if (maps == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), maps) != NULL)
		found = strstr(line, "libkheap_malloc") != NULL;
	fclose(maps);
	return found;
}

int main(int argc, char **argv)
{
	unsigned int threads = argc > 1 ? (unsigned int)atoi(argv[1]) : 32;
	unsigned int waves = argc > 2 ? (unsigned int)atoi(argv[2]) : 3;
	unsigned int strings = argc > 3 ? (unsigned int)atoi(argv[3]) : 3000;
	struct queue queue = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
	uint64_t checksum = 0, bytes = 0;
	unsigned long damaged = 0;
	struct worker *workers = calloc(threads, sizeof(*workers));
	pthread_t *ids = calloc(threads, sizeof(*ids));

	if (threads == 0 || workers == NULL || ids == NULL) {
		fprintf(stderr, "usage: %s [threads>0] [waves] [strings]\n", argv[0]);
		return 2;
	}
	for (unsigned int wave = 0; wave < waves; wave++) {
		for (unsigned int t = 0; t < threads; t++) {
			workers[t] = (struct worker){wave * threads + t, strings, &queue, 0, 0, 0};
			if (pthread_create(&ids[t], NULL, run_worker, &workers[t]) != 0) {
				fprintf(stderr, "pthread_create failed\n");
				return 1;
			}
		}
		for (unsigned int t = 0; t < threads; t++) {
			pthread_join(ids[t], NULL);
			checksum += workers[t].checksum;
			bytes += workers[t].bytes;
			damaged += workers[t].damaged;
		}
	}
	damaged += drain(&queue, SIZE_MAX);
	free(queue.items);
	free(workers);
	free(ids);
	printf("threads=%u waves=%u strings=%llu bytes=%llu checksum=%016llx damaged=%lu\n",
	       threads, waves, (unsigned long long)threads * waves * strings,
	       (unsigned long long)bytes, (unsigned long long)checksum, damaged);
	fprintf(stderr, "libkheap_malloc mapped: %s\n", kheap_malloc_mapped() ? "yes" : "no");
	return damaged == 0 ? 0 : 1;
}
