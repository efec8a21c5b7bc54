#!/usr/bin/env python3
"""Writes the seed corpus of the heap fuzz harness into tests/fuzz/corpus/.

Each seed is a short, readable scenario in the input format documented in
tests/fuzz/heap_fuzz.h, for every heap kind where it applies. The output is
deterministic (fixed seeds), so regenerating changes nothing unless this
script changes. Usage: tests/fuzz/make_corpus.py [output-dir]
"""
import os
import random
import sys

SYS_SMALL, SYS_BIG, K_CACHED, K_NOCACHE = range(4)
KIND_NAMES = {SYS_SMALL: "sys_small", SYS_BIG: "sys_big", K_CACHED: "k_cached",
              K_NOCACHE: "k_nocache"}
ALL_KINDS = (SYS_SMALL, SYS_BIG, K_CACHED, K_NOCACHE)
K_KINDS = (K_CACHED, K_NOCACHE)


def header(kind, selector, offset=0, percent=25):
    return bytes([kind, selector & 0xff, (selector >> 8) & 0xff, (selector >> 16) & 0xff,
                  offset, percent - 1])


def heap_of(kind, nbytes, offset=0, percent=25):
    """A header for a heap of exactly nbytes (a cached k_heap: 64 KiB + selector)."""
    if kind == K_CACHED:
        return header(kind, nbytes - 65536, offset, percent)
    if nbytes < 2048:
        return header(kind, 0x800000 | nbytes, offset, percent)
    return header(kind, nbytes, offset, percent)


def tiny(n):
    return bytes([0x00, n])


def mid(n):
    return bytes([0x40 | (n >> 8), n & 0xff])


def large(n):
    return bytes([0x80 | (n >> 8), n & 0xff])


def fraction(k):
    """heap bytes * k / 240."""
    return bytes([0xc0, k])


def overflowing(k=0):
    return bytes([0xc0 | k, 255])


def align(log2):
    return log2 + 1


BAD_ALIGN = 0xf3  # 12: not a power of two
WAIT = 230  # K_USEC(6)


def alloc(size, wait=0):
    return bytes([0]) + size + bytes([wait])


def aligned(a, size, wait=0):
    return bytes([2, a]) + size + bytes([wait])


def realloc(slot, size, wait=0):
    return bytes([3, slot]) + size + bytes([wait])


def aligned_realloc(slot, a, size):
    return bytes([4, slot, a]) + size


def calloc(count, size, wait=0):
    return bytes([4, count]) + size + bytes([wait])


def free(slot):
    return bytes([5, slot])


VALIDATE, STATS, RESET_MAX, CHECK_ALL, DRAIN, FREE_ALL = (
    bytes([8]), bytes([9]), bytes([10]), bytes([11]), bytes([13]), bytes([14]))


def migrate(cpu):
    return bytes([12, cpu])


def burst(count, size):
    return bytes([15, count]) + size


def scenarios():
    """Yields (name, bytes) pairs."""
    for kind in ALL_KINDS:
        name = KIND_NAMES[kind]
        big = 96 * 1024 if kind == K_CACHED else 64 * 1024

        yield (f"{name}_fill_then_free", heap_of(kind, big) + burst(31, mid(200)) + STATS +
               b"".join(free(i * 7) for i in range(31)) + STATS + VALIDATE)

        yield (f"{name}_small_classes", heap_of(kind, big) +
               b"".join(alloc(tiny(n)) for n in range(1, 64, 3)) + STATS +
               b"".join(free(n) for n in range(0, 40, 2)) + CHECK_ALL + VALIDATE)

        yield (f"{name}_realloc_chain", heap_of(kind, big, offset=3) + alloc(mid(40)) +
               realloc(0, mid(500)) + realloc(0, large(3000)) + realloc(0, tiny(9)) +
               alloc(mid(100)) + realloc(0, large(9000)) + realloc(1, tiny(0)) + STATS +
               realloc(255, mid(77)) + VALIDATE)

        yield (f"{name}_aligned", heap_of(kind, big, offset=5) +
               b"".join(aligned(align(k), mid(24 + 40 * k)) for k in range(0, 15)) +
               aligned(BAD_ALIGN, mid(64)) + aligned(0, tiny(8)) + STATS + VALIDATE +
               FREE_ALL)

        yield (f"{name}_exhaust", heap_of(kind, 8192 if kind != K_CACHED else 65536) +
               alloc(fraction(200)) + alloc(fraction(100), WAIT) + STATS + free(0) +
               alloc(fraction(100), WAIT) + alloc(fraction(239)) + STATS + FREE_ALL +
               alloc(fraction(230)) + VALIDATE)

        yield (f"{name}_overflow", heap_of(kind, big) + alloc(overflowing()) +
               alloc(overflowing(5)) + alloc(tiny(0)) + alloc(mid(16)) +
               realloc(0, overflowing()) + aligned(align(12), overflowing(1)) + STATS +
               (calloc(200, overflowing(3)) + calloc(0, mid(8)) + calloc(3, mid(100))
                if kind in K_KINDS else aligned_realloc(0, BAD_ALIGN, tiny(0))) + STATS)

        yield (f"{name}_reset_max", heap_of(kind, big) + burst(10, large(2000)) +
               RESET_MAX + free(0) + free(1) + STATS + RESET_MAX + burst(3, mid(900)) + STATS)

        rng = random.Random(0x5eed + kind)
        for variant in range(3):
            ops = []
            for _ in range(120):
                roll = rng.randrange(100)
                if roll < 30:
                    ops.append(alloc(rng.choice([tiny(rng.randrange(64)),
                                                 mid(rng.randrange(1100)),
                                                 large(rng.randrange(6000))])))
                elif roll < 38:
                    ops.append(aligned(align(rng.randrange(13)), mid(rng.randrange(1100))))
                elif roll < 48:
                    ops.append(realloc(rng.randrange(255), mid(rng.randrange(1100))))
                elif roll < 53 and kind not in K_KINDS:
                    ops.append(aligned_realloc(rng.randrange(255), align(rng.randrange(12)),
                                               mid(rng.randrange(1100))))
                elif roll < 80:
                    ops.append(free(rng.randrange(255)))
                elif roll < 84:
                    ops.append(STATS)
                elif roll < 86:
                    ops.append(VALIDATE)
                elif roll < 90:
                    ops.append(migrate(rng.randrange(8)))
                elif roll < 92:
                    ops.append(DRAIN)
                elif roll < 94:
                    ops.append(CHECK_ALL)
                else:
                    ops.append(burst(rng.randrange(12), tiny(rng.randrange(64))))
            size = rng.choice([4096, 20000, big])
            yield (f"{name}_mixed_{variant}",
                   heap_of(kind, size, offset=rng.randrange(8)) + b"".join(ops))

    for kind in (SYS_SMALL, SYS_BIG, K_NOCACHE):
        name = KIND_NAMES[kind]
        for nbytes in (0, 23, 24, 40, 100, 300):
            yield (f"{name}_tiny_heap_{nbytes}", heap_of(kind, nbytes, offset=nbytes % 8) +
                   alloc(tiny(8)) + alloc(tiny(1)) + aligned(align(4), tiny(8)) + STATS +
                   free(0) + VALIDATE)

    yield ("sys_small_near_limit", heap_of(SYS_SMALL, 131050, offset=4) +
           alloc(fraction(239)) + STATS + FREE_ALL)
    yield ("sys_small_over_limit", heap_of(SYS_SMALL, 131071, offset=1) + alloc(tiny(8)))

    yield ("k_cached_cross_cpu_free", heap_of(K_CACHED, 200000, percent=40) +
           burst(20, mid(64)) + burst(20, mid(300)) + migrate(1) +
           b"".join(free(0) for _ in range(40)) + STATS + migrate(0) + burst(10, mid(64)) +
           STATS + DRAIN + STATS + VALIDATE)
    yield ("k_cached_budget_flush", heap_of(K_CACHED, 65536, percent=1) +
           burst(31, mid(120)) + b"".join(free(0) for _ in range(31)) + STATS +
           burst(31, mid(120)) + STATS + FREE_ALL)
    yield ("k_cached_drain_for_big", heap_of(K_CACHED, 65536, percent=100) +
           b"".join(burst(31, mid(500)) for _ in range(3)) + migrate(1) +
           b"".join(free(0) for _ in range(60)) + alloc(fraction(120), WAIT) + STATS +
           VALIDATE)
    yield ("k_cached_realloc_after_drain", heap_of(K_CACHED, 65536, percent=100) +
           alloc(mid(64)) + burst(31, mid(1000)) + b"".join(free(1) for _ in range(31)) +
           STATS + realloc(0, fraction(200)) + STATS + realloc(0, mid(10)) + VALIDATE)
    yield ("k_nocache_wait_timeout", heap_of(K_NOCACHE, 4096) + alloc(fraction(180)) +
           alloc(fraction(180), 255) + realloc(0, fraction(239), 240) + STATS)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    count = 0
    for name, data in scenarios():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        count += 1
    print(f"wrote {count} seeds to {out}")


if __name__ == "__main__":
    main()
