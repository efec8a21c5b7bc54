/*
 * heapstress random numbers: a splitmix64 stream per thread.
 *
 * Every decision a thread makes (sizes, which block to free, which workload
 * runs next) comes from its own stream, seeded from the run's seed and the
 * thread's index, so a seed replays the same request sequence. hs_mix64 is
 * also the hash that turns a block's id into its fill pattern.
 */
#ifndef HEAPSTRESS_RNG_H
#define HEAPSTRESS_RNG_H

#include <stddef.h>
#include <stdint.h>

struct hs_rng {
	uint64_t state;
};

static inline uint64_t hs_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static inline void hs_rng_seed(struct hs_rng *rng, uint64_t seed, uint64_t stream)
{
	rng->state = hs_mix64(seed ^ hs_mix64(stream + 1));
}

static inline uint64_t hs_rng_next(struct hs_rng *rng)
{
	rng->state += UINT64_C(0x9e3779b97f4a7c15);
	return hs_mix64(rng->state);
}

/* Uniform in [0, bound); bound must be nonzero. The modulo bias is far below noise. */
static inline uint64_t hs_rng_below(struct hs_rng *rng, uint64_t bound)
{
	return hs_rng_next(rng) % bound;
}

/* Uniform in [0, 1). */
static inline double hs_rng_unit(struct hs_rng *rng)
{
	return (double)(hs_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [low, high]. */
static inline size_t hs_rng_range(struct hs_rng *rng, size_t low, size_t high)
{
	return low + (size_t)hs_rng_below(rng, (uint64_t)(high - low) + 1);
}

#endif
