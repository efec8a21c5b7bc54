/*
 * heapstress across processes (--processes N): one heap in shared memory,
 * N forked worker processes running the usual threads on it, and the
 * parent watching, checking and reporting for all of them (procs.c).
 *
 * Only run.c and checks.c call these, from the parent, in this order:
 * hs_procs_format_heap and hs_procs_setup during setup (a failure there is
 * a usage error, exit 2, and no process was forked), hs_procs_drive for
 * phases 2-4, the checks, and hs_procs_free last. Each child runs inside
 * hs_procs_drive and exits there; it never returns to the caller.
 */
#ifndef HEAPSTRESS_PROCS_H
#define HEAPSTRESS_PROCS_H

#include <stdbool.h>
#include <stddef.h>

#include <kheap/k_heap.h>

struct hs_runner;
struct hs_procs;

/* Creates the memfd, maps it and formats it as a shared heap in r->heap. 0 or -1 (usage error). */
int hs_procs_format_heap(struct hs_runner *r, const struct k_heap_config *config);

/*
 * Lays out the coordination area (every process's threads, counters and
 * rings) and the address space the children map the heap into. 0 or -1.
 */
int hs_procs_setup(struct hs_runner *r);

/*
 * Forks the workers and runs the whole multi-process run up to the checks:
 * drive, kill (--kill-one), park and inspect, release, wake-up relay, exit.
 * Returns 0 with every child reaped, or -1 when no process could be forked.
 */
int hs_procs_drive(struct hs_runner *r);

/*
 * A failure was recorded in `r` (run.c's first-failure hook): stop every
 * process. Safe from any thread of any process, also from a fault handler.
 */
void hs_procs_on_failure(struct hs_runner *r);

/*
 * Blocks (and their usable bytes) that the surviving processes hold, parked,
 * and that wait in the rings between them. False when a process died
 * unasked: what it held is unknown.
 */
bool hs_procs_holdings(struct hs_runner *r, size_t *blocks, size_t *usable_bytes);

/* Every block the run took is held by a survivor or was reclaimed from --kill-one's victim. */
bool hs_procs_accounted(const struct hs_runner *r);

/*
 * With every process reaped: the checks only a multi-process run has,
 * ending with the parent's detach unless the heap is suspect.
 */
void hs_procs_final_checks(struct hs_runner *r);

/* Kills and reaps any child left, detaches if still attached, unmaps and closes everything. */
void hs_procs_free(struct hs_runner *r);

#endif
