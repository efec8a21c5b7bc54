/*
 * k_timeout_t and its constructors, with Zephyr's names.
 *
 * A timeout is a relative duration in nanoseconds (one tick is one
 * nanosecond), K_NO_WAIT (0) or K_FOREVER (-1). A blocking call turns it into
 * an absolute CLOCK_MONOTONIC deadline once, on entry; every retry after a
 * wake-up waits for that same deadline. Durations that would overflow 64-bit
 * nanoseconds saturate to K_FOREVER.
 */
#ifndef KHEAP_TIMEOUT_H
#define KHEAP_TIMEOUT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t k_ticks_t;

typedef struct {
	k_ticks_t ticks;
} k_timeout_t;

#define K_TICKS_FOREVER	    ((k_ticks_t)-1)
#define KHEAP_TICKS_PER_SEC 1000000000LL

static inline k_timeout_t kheap_timeout_from(int64_t count, int64_t ns_per_unit)
{
	k_timeout_t t;

	if (count <= 0) {
		t.ticks = 0;
	} else if (count > INT64_MAX / ns_per_unit) {
		t.ticks = K_TICKS_FOREVER;
	} else {
		t.ticks = count * ns_per_unit;
	}
	return t;
}

static inline k_timeout_t kheap_timeout_forever(void)
{
	k_timeout_t t;

	t.ticks = K_TICKS_FOREVER;
	return t;
}

/* Negative durations mean "do not wait", as zero does. */
#define K_NO_WAIT    kheap_timeout_from(0, 1)
#define K_FOREVER    kheap_timeout_forever()
#define K_NSEC(t)    kheap_timeout_from((int64_t)(t), 1)
#define K_USEC(t)    kheap_timeout_from((int64_t)(t), 1000LL)
#define K_MSEC(ms)   kheap_timeout_from((int64_t)(ms), 1000000LL)
#define K_SECONDS(s) kheap_timeout_from((int64_t)(s), 1000000000LL)
#define K_MINUTES(m) kheap_timeout_from((int64_t)(m), 60LL * 1000000000LL)
#define K_HOURS(h)   kheap_timeout_from((int64_t)(h), 3600LL * 1000000000LL)
#define K_TICKS(t)   kheap_timeout_from((int64_t)(t), 1)

#define K_TIMEOUT_EQ(a, b) ((a).ticks == (b).ticks)

#ifdef __cplusplus
}
#endif

#endif
