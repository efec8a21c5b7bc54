/*
 * The heap fuzz harness: one input is decoded into a heap and a sequence of
 * operations on it, each checked against a reference model of the live
 * blocks. The same function runs under libFuzzer (run_fuzz.sh builds it with
 * -fsanitize=fuzzer) and under GoogleTest (corpus_replay_test replays every
 * file in corpus/), so a reproducer dropped into corpus/ stays a test.
 *
 * Input format. Bytes past the end of the input read as 0; decoding stops at
 * the first operation that starts past the end.
 *   byte 0        heap kind, modulo 4: sys_heap with 4-byte headers,
 *                 sys_heap with 8-byte headers, k_heap with per-CPU caches,
 *                 k_heap without caches
 *   bytes 1..3    heap size selector (little-endian, 24 bits): if bit 23 is
 *                 set, a tiny heap of selector % 2048 bytes; otherwise
 *                 selector % 131072 bytes. A cached k_heap instead gets
 *                 65536 + selector % 196608 bytes, so caches are worth it.
 *   byte 4        the region starts (byte % 8) bytes past an aligned address
 *   byte 5        cache bound for a cached k_heap: 1 + byte % 100 percent
 *   then ops      one opcode byte (modulo 16), then its fixed arguments:
 *     size (2 bytes s0 s1): by s0 >> 6: 0 -> s1 % 64; 1 -> 14 bits % 1100;
 *                 2 -> 14 bits; 3 -> heap bytes * s1 / 240, except s1 == 255
 *                 which is SIZE_MAX - (s0 & 63), an overflowing request
 *     align (1 byte a): a >= 0xf0 -> 3 * (a & 15) + 3 (never a power of two,
 *                 must be refused); else a % 16 == 0 -> 0, or 1 << (a % 16 - 1)
 *     slot (1 byte): 255 -> NULL, else index % live blocks (NULL when none)
 *     wait (1 byte w): k_heap timeout, K_NO_WAIT below 224, else K_USEC(w - 224)
 *   0, 1  alloc            size, wait
 *   2     aligned alloc    align, size, wait
 *   3     realloc          slot, size, wait
 *   4     sys_heap: aligned realloc (slot, align, size);
 *         k_heap: calloc (count byte, size, wait)
 *   5..7  free             slot
 *   8     validate
 *   9     stats, usable sizes and (k_heap) a walk, all against the model
 *   10    reset the max-allocated statistic
 *   11    check the contents of every live block
 *   12    k_heap: move this thread to another allowed CPU (byte picks it)
 *   13    k_heap: drain the per-CPU caches
 *   14    free everything and check the heap is as fresh
 *   15    alloc burst      count byte (% 32), size
 *
 * The model holds every live block (address, request, usable size, the tag
 * its contents were written from). Checked: blocks never overlap each other
 * or leave the region, alignment and usable size honour the request with no
 * splittable tail, contents survive until free (realloc keeps the common
 * prefix; a failed realloc keeps the whole block), calloc memory is zero,
 * refused requests do not change what users hold, an empty heap serves any
 * request up to its fresh capacity, stats match the model exactly, a
 * k_heap walk sees exactly the live blocks as USED, validate holds, nothing
 * reaches the fault handler, and every run ends with the heap as fresh (and
 * a k_heap that deinitialises).
 */
#ifndef KHEAP_TESTS_FUZZ_HEAP_FUZZ_H
#define KHEAP_TESTS_FUZZ_HEAP_FUZZ_H

#include <cstddef>
#include <cstdint>
#include <string>

/* Runs one input. Returns false with *failure describing the first broken check. */
bool heap_fuzz_run(const uint8_t *data, size_t size, std::string *failure);

#endif
