/*
 * The atomic operations kheap uses, each named for its ordering.
 *
 * In every normal build they are Concurrency Kit's ck_pr operations and
 * fences, which pick the right instructions and barriers for the target's
 * memory model (TSO on x86, RMO on Arm). ThreadSanitizer cannot see CK's
 * inline-assembly atomics or its standalone fences, and would report every
 * lock hand-over as a data race; a TSan build therefore maps the same names
 * onto the compiler's __atomic builtins with the same orderings, which it
 * models exactly. Nothing else differs between the two builds.
 */
#ifndef KHEAP_SMP_ATOMIC_H
#define KHEAP_SMP_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#if defined(__SANITIZE_THREAD__)
#define KHEAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KHEAP_TSAN 1
#endif
#endif

#ifdef KHEAP_TSAN

static inline unsigned int kheap_load_uint(const unsigned int *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline unsigned int kheap_load_acquire_uint(const unsigned int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void kheap_store_release_uint(unsigned int *p, unsigned int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline bool kheap_cas_uint(unsigned int *p, unsigned int expected, unsigned int desired)
{
	return __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static inline void kheap_inc_uint(unsigned int *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
}

static inline void kheap_dec_uint(unsigned int *p)
{
	__atomic_fetch_sub(p, 1, __ATOMIC_SEQ_CST);
}

static inline uint32_t kheap_load_acquire_32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void kheap_store_release_32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void *kheap_load_acquire_ptr(void *const *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void *kheap_swap_ptr(void **p, void *v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

static inline uint32_t kheap_load_relaxed_32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void kheap_store_relaxed_32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint16_t kheap_load_relaxed_16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void kheap_store_relaxed_16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

#else

static inline unsigned int kheap_load_uint(const unsigned int *p)
{
	return ck_pr_load_uint(p);
}

static inline unsigned int kheap_load_acquire_uint(const unsigned int *p)
{
	unsigned int v = ck_pr_load_uint(p);

	ck_pr_fence_acquire();
	return v;
}

static inline void kheap_store_release_uint(unsigned int *p, unsigned int v)
{
	ck_pr_fence_release();
	ck_pr_store_uint(p, v);
}

/* CK's CAS is a full barrier on every supported target. */
static inline bool kheap_cas_uint(unsigned int *p, unsigned int expected, unsigned int desired)
{
	return ck_pr_cas_uint(p, expected, desired);
}

static inline void kheap_inc_uint(unsigned int *p)
{
	ck_pr_inc_uint(p);
	ck_pr_fence_atomic_load();
}

static inline void kheap_dec_uint(unsigned int *p)
{
	ck_pr_fence_release();
	ck_pr_dec_uint(p);
}

static inline uint32_t kheap_load_acquire_32(const uint32_t *p)
{
	uint32_t v = ck_pr_load_32(p);

	ck_pr_fence_acquire();
	return v;
}

static inline void kheap_store_release_32(uint32_t *p, uint32_t v)
{
	ck_pr_fence_release();
	ck_pr_store_32(p, v);
}

static inline void *kheap_load_acquire_ptr(void *const *p)
{
	void *v = ck_pr_load_ptr(p);

	ck_pr_fence_acquire();
	return v;
}

static inline void *kheap_swap_ptr(void **p, void *v)
{
	return ck_pr_fas_ptr(p, v);
}

static inline uint32_t kheap_load_relaxed_32(const uint32_t *p)
{
	return ck_pr_load_32(p);
}

static inline void kheap_store_relaxed_32(uint32_t *p, uint32_t v)
{
	ck_pr_store_32(p, v);
}

static inline uint16_t kheap_load_relaxed_16(const uint16_t *p)
{
	return ck_pr_load_16(p);
}

static inline void kheap_store_relaxed_16(uint16_t *p, uint16_t v)
{
	ck_pr_store_16(p, v);
}

#endif

#endif
