/*
 * Zephyr source compatibility: this file is written as Zephyr application
 * code would be, against <zephyr/kernel.h> alone and only Zephyr's names
 * (K_HEAP_DEFINE, k_heap_*, k_timeout_t constructors, k_malloc and friends,
 * sys_heap_* on a k_heap's `heap` member). That it compiles as C11 with the
 * project's warnings is half the test; running it checks the calls behave.
 *
 * Exits 0 when every check holds; otherwise prints each failed check and
 * exits 1. The heaps are used from this one thread only, in file order.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <zephyr/kernel.h>

K_HEAP_DEFINE(compat_heap, 64 * 1024);
K_HEAP_DEFINE(full_heap, 4 * 1024);

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void check_k_heap_calls(void)
{
	struct sys_memory_stats stats;
	char *block = k_heap_alloc(&compat_heap, 100, K_NO_WAIT);
	void *aligned;
	uint32_t *zeroed;
	char *resized;

	CHECK(block != NULL);
	if (block == NULL) {
		return;
	}
	memset(block, 0x5a, 100);

	aligned = k_heap_aligned_alloc(&compat_heap, 256, 48, K_MSEC(10));
	CHECK(aligned != NULL && (uintptr_t)aligned % 256 == 0);

	zeroed = k_heap_calloc(&compat_heap, 16, sizeof(*zeroed), K_FOREVER);
	CHECK(zeroed != NULL);
	if (zeroed != NULL) {
		for (int i = 0; i < 16; i++) {
			CHECK(zeroed[i] == 0);
		}
	}
	CHECK(k_heap_calloc(&compat_heap, SIZE_MAX, 2, K_NO_WAIT) == NULL);

	resized = k_heap_realloc(&compat_heap, block, 4000, K_MSEC(10));
	CHECK(resized != NULL);
	if (resized != NULL) {
		block = resized;
		CHECK(block[0] == 0x5a && block[99] == 0x5a);
	}

	CHECK(sys_heap_usable_size(&compat_heap.heap, block) >= 4000);
	CHECK(sys_heap_validate(&compat_heap.heap));
	CHECK(k_heap_runtime_stats_get(&compat_heap, &stats) == 0);
	CHECK(stats.allocated_bytes >= 4000 + 48 + 64);
	CHECK(sys_heap_runtime_stats_get(&compat_heap.heap, &stats) == 0);
	CHECK(stats.allocated_bytes >= 4000 + 48 + 64);
	CHECK(sys_heap_runtime_stats_reset_max(&compat_heap.heap) == 0);

	k_heap_free(&compat_heap, block);
	k_heap_free(&compat_heap, aligned);
	k_heap_free(&compat_heap, zeroed);
	k_heap_free(&compat_heap, NULL);
	CHECK(k_heap_runtime_stats_get(&compat_heap, &stats) == 0);
	CHECK(stats.allocated_bytes == 0);
	CHECK(sys_heap_validate(&compat_heap.heap));
}

static void check_timeouts(void)
{
	void *blocks[64];
	int count = 0;
	k_timeout_t forever = K_FOREVER;
	k_timeout_t none = K_NO_WAIT;

	CHECK(K_TIMEOUT_EQ(forever, K_FOREVER));
	CHECK(K_TIMEOUT_EQ(none, K_NO_WAIT));
	CHECK(!K_TIMEOUT_EQ(K_MSEC(1), K_NO_WAIT));
	CHECK(K_TIMEOUT_EQ(K_SECONDS(1), K_MSEC(1000)));
	CHECK(K_TIMEOUT_EQ(K_MSEC(1), K_USEC(1000)));

	while (count < 64) {
		blocks[count] = k_heap_alloc(&full_heap, 256, K_NO_WAIT);
		if (blocks[count] == NULL) {
			break;
		}
		count++;
	}
	CHECK(count > 0 && count < 64);
	CHECK(k_heap_alloc(&full_heap, 256, K_NO_WAIT) == NULL);
	CHECK(k_heap_alloc(&full_heap, 256, K_MSEC(20)) == NULL);
	CHECK(k_heap_alloc(&full_heap, 256, K_USEC(500)) == NULL);
	CHECK(k_heap_alloc(&full_heap, 0, K_NO_WAIT) == NULL);

	if (count > 0) {
		k_heap_free(&full_heap, blocks[--count]);
		blocks[count] = k_heap_alloc(&full_heap, 256, K_FOREVER);
		CHECK(blocks[count] != NULL);
		count++;
	}
	while (count > 0) {
		k_heap_free(&full_heap, blocks[--count]);
	}
	CHECK(sys_heap_validate(&full_heap.heap));
}

static void check_system_heap(void)
{
	struct sys_memory_stats stats;
	char *p = k_malloc(1000);
	char *q;
	int *zeroed = k_calloc(8, sizeof(int));
	void *aligned = k_aligned_alloc(64, 100);

	CHECK(p != NULL);
	CHECK(zeroed != NULL && zeroed[0] == 0 && zeroed[7] == 0);
	CHECK(aligned != NULL && (uintptr_t)aligned % 64 == 0);
	CHECK(k_malloc(0) == NULL);
	if (p != NULL) {
		memset(p, 0x33, 1000);
		q = k_realloc(p, 5000);
		CHECK(q != NULL);
		if (q != NULL) {
			p = q;
			CHECK(p[0] == 0x33 && p[999] == 0x33);
		}
	}
	CHECK(k_heap_runtime_stats_get(k_system_heap(), &stats) == 0);
	CHECK(stats.allocated_bytes >= 5000 + 32 + 100);
	CHECK(sys_heap_validate(&k_system_heap()->heap));
	k_free(p);
	k_free(zeroed);
	k_free(aligned);
	k_free(NULL);
	CHECK(k_realloc(NULL, 0) == NULL);
}

int main(void)
{
	check_k_heap_calls();
	check_timeouts();
	check_system_heap();
	if (failures != 0) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all Zephyr compatibility checks passed\n");
	return 0;
}
