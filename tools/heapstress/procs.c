/*
 * heapstress across processes: one heap in a memfd, shared by N forked
 * worker processes that each run the usual worker and storm threads on it.
 *
 * Memory:
 * - The heap is a memfd of --heap-size bytes. The parent maps it wherever
 *   mmap puts it and formats it (k_heap_init_shared). Before forking it
 *   reserves PROT_NONE address space with one slot per worker process, each
 *   a page larger than the heap; child p maps the memfd over slot p
 *   (MAP_FIXED inside that reservation, so nothing else is replaced) and
 *   unmaps the parent's mapping it inherited. Every process thus reaches
 *   the heap through an address of its own, and a pointer carried over from
 *   another process faults instead of working by accident.
 * - The coordination area is an anonymous shared mapping made before the
 *   forks, at the same address in every process; it is the tool's own
 *   bookkeeping, never part of the heap. It holds the phase, event and stop
 *   words, one slot per process, the wake-up relay, the cross-process rings
 *   (which carry heap offsets, workloads.c) and every thread's struct
 *   hs_thread: counters and histograms live there, so the parent samples
 *   them while the children run and sums them once they are gone.
 *
 * Phases: the parent advances `phase`; each child reports its progress in
 * its slot's `state` (both only grow) and bumps `event`.
 * 1. setup: each child maps the heap, attaches and publishes its mapping
 *    and owner tag; the parent checks that the mappings differ.
 * 2. run: children start their threads; the parent samples and validates
 *    the heap as a single-process run does, reaps any child that dies and,
 *    with --kill-one, SIGKILLs the victim halfway (with =parked, once its
 *    threads finished the heap call they were in and parked, so it dies
 *    holding blocks but no heap lock), reaps it, calls k_heap_reclaim_dead
 *    while the survivors keep running, and validates.
 *    The phase ends at the deadline, when every survivor spent its quota,
 *    or on any failure (a child's first failure sets `stop` for everyone).
 * 3. park: each child parks its threads and publishes what they hold; with
 *    every survivor parked the parent adds the blocks still in the rings
 *    (a process parks while others may still send to it, so only the
 *    parent can count them) and walks the heap against the sum.
 * 4. release: children free everything they hold and join their threads.
 * 5. relay: with every thread of every process idle, each ring member in
 *    turn fills the heap, the next one blocks in k_heap_alloc, and the
 *    filler frees one block once it sees the waiter queued. Nothing else
 *    touches the heap then, so the free that serves the waiter is the other
 *    process's: a blocked allocation served across processes, shown.
 * 6. exit: children detach and exit; the parent reaps them, calls
 *    k_heap_reclaim_dead once more (it must find nothing) and detaches.
 *
 * Invariants:
 * - The --kill-one victim (the last process) takes no part in the rings or
 *   the relay, so every block it can hold carries its own owner tag and no
 *   survivor ever touches one: reclaiming them while survivors run is safe,
 *   and afterwards the heap must match the survivors' holdings exactly.
 * - A process that dies unasked may have sent blocks that still sit in a
 *   survivor's ring, so it is reclaimed only after the survivors released
 *   everything, and the checks that need every block are skipped (the run
 *   fails on the death itself).
 * - Every wait has a deadline or watches for deaths: a child that dies is
 *   reaped and reported with its signal; one that makes no progress for
 *   HS_STUCK_NS ends the run (exit 1). Children die with the parent
 *   (PR_SET_PDEATHSIG). The words are futexes in shared memory.
 */
#include "procs.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"
#include "run.h"
#include "runner.h"

#define HS_STUCK_NS (60ull * HS_NS_PER_S)
/* How often waits look for dead children, and children for the parent's stop. */
#define HS_POLL_NS	  (HS_NS_PER_S / 50)
#define HS_RELAY_WAIT_MS  5000
#define HS_RELAY_PAUSE_NS 50000
/* The relay filler's smallest piece: past the cache sizes, so it comes from the global heap. */
#define HS_RELAY_CRUMB	 (2 * KHEAP_CACHE_MAX_BYTES)
#define HS_PROC_MESSAGES 4
#define HS_AREA_ALIGN	 64

enum hs_phase {
	HS_PHASE_SETUP,
	HS_PHASE_RUN,
	HS_PHASE_PARK,
	HS_PHASE_RELEASE,
	HS_PHASE_RELAY,
	HS_PHASE_EXIT,
};

enum hs_proc_state {
	HS_STATE_FORKED,
	HS_STATE_ATTACHED,
	/* Threads set up, waiting for the run to start. */
	HS_STATE_READY,
	HS_STATE_RUNNING,
	/* Every worker spent its quota; storm threads run on until the stop. */
	HS_STATE_FINISHED,
	HS_STATE_PARKED,
	HS_STATE_RELEASED,
	HS_STATE_RELAYED,
	HS_STATE_DONE,
	/* Never set: waiting for it waits until the process is reaped. */
	HS_STATE_REAPED,
};

/*
 * Written by its process and read by the parent (park_request goes the other
 * way): attach_rc, mapping and owner_tag once `state` is ATTACHED, held_*
 * once it is PARKED, first_failure once first_failure_set, and the rest of
 * the failure log once the process has been reaped.
 */
struct hs_proc_slot {
	_Atomic uint32_t state;
	/* --kill-one=parked: the parent asks the victim to park; it answers when it has. */
	_Atomic uint32_t park_request;
	_Atomic uint32_t parked_for_kill;
	int attach_rc;
	uint64_t mapping;
	uint32_t owner_tag;
	uint64_t held_blocks;
	uint64_t held_usable;
	atomic_bool heap_suspect;
	atomic_bool first_failure_set;
	char first_failure[HS_FAILURE_LEN];
	uint64_t faults;
	uint32_t nmessages;
	uint64_t dropped;
	char messages[HS_PROC_MESSAGES][HS_FAILURE_LEN];
};

struct hs_area {
	_Atomic uint32_t phase;
	_Atomic uint32_t event;
	_Atomic uint32_t stop;
	/* The relay: each word holds the last step that reached that point. */
	_Atomic uint32_t relay_filled;
	_Atomic uint32_t relay_waiting;
	_Atomic uint32_t relay_served;
	_Atomic uint32_t relay_done;
	/* Set by the parent before the relay phase. */
	uint32_t relay_steps;
	uint64_t relay_block;
	struct hs_relay_step relay[HS_MAX_PROCESSES];
	struct hs_proc_slot proc[HS_MAX_PROCESSES];
};

/*
 * The parent's bookkeeping. Children get a copy at fork and use only the
 * layout fields and `self`.
 */
struct hs_procs {
	struct hs_area *area;
	size_t area_bytes;
	unsigned char *rings;
	struct hs_thread *threads;
	unsigned int count;
	unsigned int per_process;
	int memfd;
	unsigned char *arena;
	size_t arena_bytes;
	size_t slot_bytes;
	/* The cross-process ring, in order: every process but the victim. */
	unsigned int members[HS_MAX_PROCESSES];
	unsigned int nmembers;
	int victim;
	int crasher;
	long parent_pid;
	/* This process's number, or -1 in the parent. */
	int self;
	pid_t pid[HS_MAX_PROCESSES];
	bool reaped[HS_MAX_PROCESSES];
	bool killed[HS_MAX_PROCESSES];
	/* A process died unasked (or never attached): not every block can be accounted for. */
	bool lost_unasked;
	/* Reclaim the unasked dead once the survivors released everything. */
	bool reclaim_pending;
	struct hs_procs_result result;
};

static long hs_futex(_Atomic uint32_t *word, int op, uint32_t value, const struct timespec *timeout)
{
	return syscall(SYS_futex, (void *)word, op, value, timeout, NULL, 0);
}

/* Sleeps while *word still holds `seen`, at most until `until_ns`; wakes may be spurious. */
static void hs_word_wait(_Atomic uint32_t *word, uint32_t seen, uint64_t until_ns)
{
	uint64_t now = hs_now_ns();
	struct timespec left;

	if (now >= until_ns) {
		return;
	}
	left.tv_sec = (time_t)((until_ns - now) / HS_NS_PER_S);
	left.tv_nsec = (long)((until_ns - now) % HS_NS_PER_S);
	hs_futex(word, FUTEX_WAIT, seen, &left);
}

static void hs_word_wake(_Atomic uint32_t *word)
{
	hs_futex(word, FUTEX_WAKE, INT_MAX, NULL);
}

static void hs_word_set(_Atomic uint32_t *word, uint32_t value)
{
	atomic_store(word, value);
	hs_word_wake(word);
}

static struct timespec hs_timespec_at(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / HS_NS_PER_S);
	ts.tv_nsec = (long)(ns % HS_NS_PER_S);
	return ts;
}

static size_t hs_round_up(size_t value, size_t unit)
{
	return (value + unit - 1) / unit * unit;
}

static struct hs_xring *hs_ring_of(const struct hs_procs *pr, const struct hs_options *opt,
				   unsigned int process, unsigned int worker)
{
	return (struct hs_xring *)(void *)(pr->rings + ((size_t)process * opt->threads + worker) *
							   hs_xring_bytes());
}

static struct hs_thread *hs_threads_of(const struct hs_procs *pr, unsigned int process)
{
	return pr->threads + (size_t)process * pr->per_process;
}

static void hs_tell_parent(struct hs_procs *pr)
{
	atomic_fetch_add(&pr->area->event, 1);
	hs_word_wake(&pr->area->event);
}

static void hs_set_state(struct hs_procs *pr, enum hs_proc_state state)
{
	atomic_store(&pr->area->proc[pr->self].state, (uint32_t)state);
	hs_tell_parent(pr);
}

static bool hs_stopping(const struct hs_procs *pr)
{
	return atomic_load(&pr->area->stop) != 0;
}

void hs_procs_on_failure(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	struct hs_area *a = pr->area;
	struct hs_proc_slot *slot;

	if (pr->self >= 0) {
		slot = &a->proc[pr->self];
		atomic_store(&slot->heap_suspect, hs_heap_suspect(&r->failures));
		memcpy(slot->first_failure, r->failures.messages[0], HS_FAILURE_LEN);
		atomic_store(&slot->first_failure_set, true);
	}
	atomic_store(&a->stop, 1);
	hs_word_wake(&a->stop);
	hs_word_wake(&a->relay_filled);
	hs_word_wake(&a->relay_waiting);
	hs_word_wake(&a->relay_served);
	hs_word_wake(&a->relay_done);
	atomic_fetch_add(&a->event, 1);
	hs_word_wake(&a->event);
}

int hs_procs_format_heap(struct hs_runner *r, const struct k_heap_config *config)
{
	const struct hs_options *opt = r->opt;
	struct hs_procs *pr = calloc(1, sizeof(*pr));
	char size_text[32];
	void *region;
	int rc;

	if (pr == NULL) {
		hs_usage_error(r->err, "out of memory");
		return -1;
	}
	pr->memfd = -1;
	pr->self = -1;
	pr->victim = -1;
	pr->crasher = -1;
	r->procs = pr;
	hs_format_bytes(opt->heap_size, size_text, sizeof(size_text));
	pr->memfd = memfd_create("heapstress-heap", MFD_CLOEXEC);
	if (pr->memfd < 0 || ftruncate(pr->memfd, (off_t)opt->heap_size) != 0) {
		hs_usage_error(r->err, "--processes: cannot create a %s memfd for the heap: %s",
			       size_text, strerror(errno));
		return -1;
	}
	region = mmap(NULL, opt->heap_size, PROT_READ | PROT_WRITE, MAP_SHARED, pr->memfd, 0);
	if (region == MAP_FAILED) {
		hs_usage_error(r->err, "--heap-size: cannot map %s: %s", size_text,
			       strerror(errno));
		return -1;
	}
	r->region = region;
	rc = k_heap_init_shared(&r->heap, r->region, opt->heap_size, config);
	r->heap_live = rc == 0;
	if (rc != 0) {
		hs_usage_error(r->err, "--heap-size: k_heap_init_shared refused %s (%s)", size_text,
			       rc == -E2BIG    ? "larger than a heap can be"
			       : rc == -EINVAL ? "too small for a shared heap's metadata"
					       : strerror(-rc));
		return -1;
	}
	return 0;
}

/* The relay's block: past the cache sizes, and small enough that the heap fills up evenly. */
static size_t hs_relay_block(size_t initial_free)
{
	size_t block = initial_free / 64;

	if (block < 4 * KHEAP_CACHE_MAX_BYTES) {
		block = 4 * KHEAP_CACHE_MAX_BYTES;
	}
	if (block > initial_free / 8) {
		block = initial_free / 8;
	}
	return block & ~(size_t)7;
}

int hs_procs_setup(struct hs_runner *r)
{
	const struct hs_options *opt = r->opt;
	struct hs_procs *pr = r->procs;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t rings_at, threads_at;
	unsigned int p, i;
	void *mem;

	pr->count = opt->processes;
	pr->per_process = opt->threads + (unsigned int)opt->storm_threads;
	pr->victim = opt->kill_one ? (int)pr->count - 1 : -1;
	pr->crasher = opt->crash_one ? 0 : -1;
	pr->parent_pid = (long)getpid();
	for (p = 0; p < pr->count; p++) {
		if ((int)p != pr->victim) {
			pr->members[pr->nmembers++] = p;
		}
	}
	rings_at = hs_round_up(sizeof(struct hs_area), HS_AREA_ALIGN);
	threads_at = hs_round_up(rings_at + (size_t)pr->count * opt->threads * hs_xring_bytes(),
				 HS_AREA_ALIGN);
	pr->area_bytes = hs_round_up(
	    threads_at + (size_t)pr->count * pr->per_process * sizeof(struct hs_thread), page);
	mem = mmap(NULL, pr->area_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		hs_usage_error(r->err, "--processes: cannot map %zu bytes to coordinate them: %s",
			       pr->area_bytes, strerror(errno));
		return -1;
	}
	pr->area = mem;
	pr->rings = (unsigned char *)mem + rings_at;
	pr->threads = (struct hs_thread *)(void *)((unsigned char *)mem + threads_at);
	for (p = 0; p < pr->count; p++) {
		for (i = 0; i < opt->threads; i++) {
			hs_xring_init(hs_ring_of(pr, opt, p, i));
		}
	}
	pr->slot_bytes = hs_round_up(opt->heap_size, page) + page;
	pr->arena_bytes = pr->slot_bytes * pr->count;
	mem = mmap(NULL, pr->arena_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (mem == MAP_FAILED) {
		hs_usage_error(r->err,
			       "--processes %u: cannot reserve address space for %u more mappings "
			       "of the heap: %s",
			       pr->count, pr->count, strerror(errno));
		return -1;
	}
	pr->arena = mem;
	pr->area->relay_block = hs_relay_block(r->result.initial_free);
	r->threads = pr->threads;
	r->nthreads = pr->count * pr->per_process;
	r->threads_borrowed = true;
	pr->result.count = pr->count;
	pr->result.parent_pid = pr->parent_pid;
	pr->result.parent_mapping = (uintptr_t)r->region;
	pr->result.victim = pr->victim;
	pr->result.victim_parked = opt->kill_parked;
	pr->result.relay_block = (size_t)pr->area->relay_block;
	r->result.procs = &pr->result;
	return 0;
}

/* ---- the child side ---- */

/* Waits for the parent to reach `phase`; if the parent dies, PR_SET_PDEATHSIG ends this process. */
static void hs_child_await_phase(struct hs_procs *pr, enum hs_phase phase)
{
	uint32_t seen;

	while ((seen = atomic_load(&pr->area->phase)) < (uint32_t)phase) {
		hs_word_wait(&pr->area->phase, seen, hs_now_ns() + HS_NS_PER_S);
	}
}

/* The relay's waits: until *word reaches `step`, the run stops, or the relay's time is up. */
static bool hs_relay_reach(struct hs_procs *pr, _Atomic uint32_t *word, uint32_t step)
{
	uint64_t deadline = hs_now_ns() + 2 * (uint64_t)HS_RELAY_WAIT_MS * 1000000u;
	uint32_t seen;

	while ((seen = atomic_load(word)) < step) {
		if (hs_stopping(pr) || hs_now_ns() >= deadline) {
			return false;
		}
		hs_word_wait(word, seen, hs_now_ns() + HS_POLL_NS);
	}
	return true;
}

static void hs_relay_pause(void)
{
	struct timespec pause = {0, HS_RELAY_PAUSE_NS};

	nanosleep(&pause, NULL);
}

/*
 * The filler's part of a step: fill, free one block once the waiter is
 * queued, then the rest.
 *
 * The fill goes on with halving sizes after the relay-size blocks run out,
 * down to HS_RELAY_CRUMB bytes, so the only free chunk the waiter can use is
 * the one the filler frees. A K_NO_WAIT request looks at only a few chunks
 * of its size bucket, so relay-size requests alone may stop with a chunk
 * that fits still free; the waiter, whose search covers the whole bucket,
 * would take it without ever queueing. A smaller piece is always cut from
 * any chunk of a larger bucket, so the halving sizes use up every such chunk.
 */
static void hs_relay_fill(struct hs_runner *c, uint32_t step)
{
	struct hs_procs *pr = c->procs;
	struct hs_area *a = pr->area;
	struct hs_relay_step *rs = &a->relay[step - 1];
	size_t size = (size_t)a->relay_block, piece;
	size_t cap = c->opt->heap_size / HS_RELAY_CRUMB + 1, n = 0, filled, i;
	void **blocks = malloc(cap * sizeof(*blocks));
	uint64_t deadline;
	void *p;

	if (blocks == NULL) {
		hs_fail(&c->failures, false, "out of memory for the wake-up relay");
		cap = 0;
	}
	while (n < cap && (p = k_heap_alloc(&c->heap, size, K_NO_WAIT)) != NULL) {
		blocks[n++] = p;
	}
	filled = n;
	for (piece = size / 2; piece >= HS_RELAY_CRUMB && n < cap; piece /= 2) {
		while (n < cap && (p = k_heap_alloc(&c->heap, piece, K_NO_WAIT)) != NULL) {
			blocks[n++] = p;
		}
	}
	rs->filled_blocks = (uint32_t)filled;
	rs->filler_owner_ok =
	    filled > 0 && k_heap_block_owner(&c->heap, blocks[0]) == k_heap_owner_tag(&c->heap);
	hs_word_set(&a->relay_filled, step);
	if (hs_relay_reach(pr, &a->relay_waiting, step)) {
		deadline = hs_now_ns() + (uint64_t)HS_RELAY_WAIT_MS * 1000000u;
		while (k_heap_waiter_count(&c->heap) == 0 && atomic_load(&a->relay_served) < step &&
		       hs_now_ns() < deadline) {
			hs_relay_pause();
		}
		rs->waiter_seen = k_heap_waiter_count(&c->heap) > 0;
	}
	if (filled > 0) {
		k_heap_free(&c->heap, blocks[0]);
	}
	hs_relay_reach(pr, &a->relay_served, step);
	for (i = filled > 0 ? 1 : 0; i < n; i++) {
		k_heap_free(&c->heap, blocks[i]);
	}
	free(blocks);
	hs_word_set(&a->relay_done, step);
}

/* The waiter's part: block on the full heap until the filler's free serves it. */
static void hs_relay_wait(struct hs_runner *c, uint32_t step)
{
	struct hs_procs *pr = c->procs;
	struct hs_area *a = pr->area;
	struct hs_relay_step *rs = &a->relay[step - 1];
	size_t size = (size_t)a->relay_block;
	uint64_t key = hs_pattern_key(c->result.seed, UINT64_MAX - step);
	struct hs_mismatch where;
	unsigned char *p;
	uint64_t t0;

	if (!hs_relay_reach(pr, &a->relay_filled, step)) {
		return;
	}
	hs_word_set(&a->relay_waiting, step);
	t0 = hs_now_ns();
	p = k_heap_alloc(&c->heap, size, K_MSEC(HS_RELAY_WAIT_MS));
	rs->wait_ns = hs_now_ns() - t0;
	rs->served = p != NULL;
	if (p != NULL) {
		rs->waiter_owner_ok = k_heap_block_owner(&c->heap, p) == k_heap_owner_tag(&c->heap);
		if (p < c->region || p + size > c->region + c->opt->heap_size) {
			hs_fail(&c->failures, true,
				"the wake-up relay's k_heap_alloc(%zu) returned %p, outside this "
				"process's mapping of the heap at %p",
				size, (void *)p, (void *)c->region);
		} else {
			hs_pattern_fill(p, size, key);
			if (!hs_pattern_check(p, size, key, &where)) {
				hs_fail(&c->failures, false,
					"the wake-up relay's block at heap offset +0x%zx did not "
					"keep its pattern (byte %zu)",
					(size_t)(p - c->region), where.offset);
			}
			k_heap_free(&c->heap, p);
		}
	}
	hs_word_set(&a->relay_served, step);
}

static void hs_child_relay(struct hs_runner *c)
{
	struct hs_procs *pr = c->procs;
	struct hs_area *a = pr->area;
	uint32_t step;

	for (step = 1; step <= a->relay_steps; step++) {
		if (!hs_relay_reach(pr, &a->relay_done, step - 1)) {
			return;
		}
		if (a->relay[step - 1].filler == (unsigned int)pr->self) {
			hs_relay_fill(c, step);
		} else if (a->relay[step - 1].waiter == (unsigned int)pr->self) {
			hs_relay_wait(c, step);
		}
	}
}

/* --kill-one=parked: park every thread, say so, and wait for the SIGKILL. */
static void __attribute__((noreturn)) hs_child_await_kill(struct hs_runner *c)
{
	struct hs_procs *pr = c->procs;
	struct timespec until;

	atomic_store(&c->shared.stop, true);
	pthread_mutex_lock(&c->lock);
	while (c->parked < c->nthreads) {
		until = hs_timespec_at(hs_now_ns() + HS_POLL_NS);
		pthread_cond_timedwait(&c->wake, &c->lock, &until);
	}
	pthread_mutex_unlock(&c->lock);
	atomic_store(&pr->area->proc[pr->self].parked_for_kill, 1);
	hs_tell_parent(pr);
	for (;;) {
		pause();
	}
}

/* --crash-one: halfway through this process's share of the run. */
static bool hs_crash_due(struct hs_runner *c)
{
	uint64_t done = 0, quota = 0;
	unsigned int i;

	if (c->opt->ops == 0) {
		return hs_now_ns() >= c->start_ns + (uint64_t)(c->opt->duration_s * 1e9 / 2);
	}
	for (i = 0; i < c->nthreads; i++) {
		done += atomic_load_explicit(&c->threads[i].worker.ops_done, memory_order_relaxed);
		quota += c->threads[i].worker.quota;
	}
	return done >= quota / 2;
}

/*
 * Phase 2 in a child: the threads run until the parent stops everyone. The
 * parent cannot signal this process's condition variable, so the wait also
 * looks at the shared stop word every HS_POLL_NS.
 */
static void hs_child_run(struct hs_runner *c)
{
	struct hs_procs *pr = c->procs;
	bool finished, told = false;
	struct timespec until;

	for (;;) {
		until = hs_timespec_at(hs_now_ns() + HS_POLL_NS);
		pthread_mutex_lock(&c->lock);
		if (!c->stop_requested && c->workers_finished < c->opt->threads) {
			pthread_cond_timedwait(&c->wake, &c->lock, &until);
		}
		finished = c->workers_finished == c->opt->threads;
		pthread_mutex_unlock(&c->lock);
		if (finished && !told) {
			hs_set_state(pr, HS_STATE_FINISHED);
			told = true;
		}
		if (pr->self == pr->crasher && hs_crash_due(c)) {
			raise(SIGSEGV);
		}
		if (atomic_load(&pr->area->proc[pr->self].park_request) != 0) {
			hs_child_await_kill(c);
		}
		if (hs_stopping(pr) || atomic_load(&pr->area->phase) >= HS_PHASE_PARK) {
			break;
		}
	}
	atomic_store(&c->shared.stop, true);
	c->end_ns = hs_now_ns();
}

static void hs_publish_failures(struct hs_runner *c, struct hs_proc_slot *slot)
{
	struct hs_failures *f = &c->failures;
	size_t i;

	pthread_mutex_lock(&f->lock);
	slot->nmessages = (uint32_t)(f->count < HS_PROC_MESSAGES ? f->count : HS_PROC_MESSAGES);
	for (i = 0; i < slot->nmessages; i++) {
		memcpy(slot->messages[i], f->messages[i], HS_FAILURE_LEN);
	}
	slot->dropped = f->dropped + (f->count - slot->nmessages);
	pthread_mutex_unlock(&f->lock);
	slot->faults = atomic_load(&f->faults);
	atomic_store(&slot->heap_suspect, hs_heap_suspect(f));
}

/* The cross-process rings: worker i receives from worker i of the previous ring member. */
static void hs_link_rings(struct hs_runner *c)
{
	struct hs_procs *pr = c->procs;
	const struct hs_options *opt = c->opt;
	unsigned int m, next = 0, i;
	bool member = false;

	for (m = 0; m < pr->nmembers; m++) {
		if (pr->members[m] == (unsigned int)pr->self) {
			member = true;
			next = pr->members[(m + 1) % pr->nmembers];
		}
	}
	if (!member || pr->nmembers < 2) {
		return;
	}
	for (i = 0; i < opt->threads; i++) {
		c->threads[i].worker.xinbox = hs_ring_of(pr, opt, (unsigned int)pr->self, i);
		c->threads[i].worker.xoutbox = hs_ring_of(pr, opt, next, i);
	}
}

/* Maps the heap at this process's own address and attaches; NULL after publishing why not. */
static struct hs_runner *hs_child_attach(struct hs_runner *parent)
{
	struct hs_procs *pr = parent->procs;
	struct hs_proc_slot *slot = &pr->area->proc[pr->self];
	const struct hs_options *opt = parent->opt;
	struct hs_runner *c;
	void *mapping;
	int rc;

	mapping = mmap(pr->arena + (size_t)pr->self * pr->slot_bytes, opt->heap_size,
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, pr->memfd, 0);
	close(pr->memfd);
	if (mapping == MAP_FAILED) {
		slot->attach_rc = -errno;
		hs_set_state(pr, HS_STATE_ATTACHED);
		return NULL;
	}
	munmap(parent->region, opt->heap_size);
	c = hs_runner_new(opt, parent->out, parent->err);
	if (c == NULL) {
		slot->attach_rc = -ENOMEM;
		hs_set_state(pr, HS_STATE_ATTACHED);
		return NULL;
	}
	c->procs = pr;
	c->proc_index = (unsigned int)pr->self;
	c->region = mapping;
	c->result.seed = parent->result.seed;
	c->shared.worker_budget = parent->shared.worker_budget;
	c->shared.storm_block = parent->shared.storm_block;
	rc = k_heap_attach(&c->heap, mapping, opt->heap_size);
	c->heap_live = rc == 0;
	slot->attach_rc = rc;
	slot->mapping = (uintptr_t)mapping;
	slot->owner_tag = rc == 0 ? k_heap_owner_tag(&c->heap) : 0;
	hs_set_state(pr, HS_STATE_ATTACHED);
	return rc == 0 ? c : NULL;
}

/* A worker process, from fork to exit: it never returns. */
static void __attribute__((noreturn)) hs_child_main(struct hs_runner *parent, unsigned int self)
{
	struct hs_procs *pr = parent->procs;
	struct hs_proc_slot *slot = &pr->area->proc[self];
	struct hs_runner *c;
	size_t blocks, usable;
	unsigned int i;
	int rc;

	pr->self = (int)self;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || (long)getppid() != pr->parent_pid) {
		_exit(HS_EXIT_FAIL);
	}
	c = hs_child_attach(parent);
	if (c == NULL) {
		_exit(HS_EXIT_FAIL);
	}
	hs_report_faults_to(c);
	if (hs_setup_threads(c, hs_threads_of(pr, self)) != 0) {
		_exit(HS_EXIT_FAIL);
	}
	hs_link_rings(c);
	hs_set_state(pr, HS_STATE_READY);
	hs_child_await_phase(pr, HS_PHASE_RUN);
	if (hs_start_threads(c) != 0) {
		_exit(HS_EXIT_FAIL);
	}
	hs_failures_start_clock(&c->failures, c->start_ns);
	hs_set_state(pr, HS_STATE_RUNNING);
	hs_child_run(c);
	hs_park(c);
	slot->held_blocks = 0;
	slot->held_usable = 0;
	for (i = 0; i < c->nthreads; i++) {
		hs_worker_holdings(&c->threads[i].worker, &blocks, &usable);
		slot->held_blocks += blocks;
		slot->held_usable += usable;
	}
	hs_publish_failures(c, slot);
	hs_set_state(pr, HS_STATE_PARKED);
	hs_child_await_phase(pr, HS_PHASE_RELEASE);
	hs_release_and_join(c);
	hs_set_state(pr, HS_STATE_RELEASED);
	hs_child_await_phase(pr, HS_PHASE_RELAY);
	hs_child_relay(c);
	hs_set_state(pr, HS_STATE_RELAYED);
	hs_child_await_phase(pr, HS_PHASE_EXIT);
	if (!hs_heap_suspect(&c->failures)) {
		rc = k_heap_detach(&c->heap);
		if (rc != 0) {
			hs_fail(&c->failures, false, "k_heap_detach returned %d", rc);
		}
	}
	hs_publish_failures(c, slot);
	hs_set_state(pr, HS_STATE_DONE);
	_exit(hs_failed(&c->failures) ? HS_EXIT_FAIL : HS_EXIT_PASS);
}

/* ---- the parent side ---- */

static double hs_run_seconds(const struct hs_runner *r)
{
	return r->start_ns != 0 ? (double)(hs_now_ns() - r->start_ns) / 1e9 : 0.0;
}

/* Copies what a reaped child recorded into this run's failures. */
static void hs_merge_failures(struct hs_runner *r, unsigned int p)
{
	struct hs_proc_slot *slot = &r->procs->area->proc[p];
	bool suspect = atomic_load(&slot->heap_suspect);
	uint32_t i;

	atomic_fetch_add(&r->failures.faults, slot->faults);
	if (slot->nmessages == 0 && atomic_load(&slot->first_failure_set)) {
		hs_fail(&r->failures, suspect, "process %u: %s", p, slot->first_failure);
	}
	for (i = 0; i < slot->nmessages && i < HS_PROC_MESSAGES; i++) {
		hs_fail(&r->failures, suspect, "process %u: %s", p, slot->messages[i]);
	}
	if (slot->dropped != 0) {
		hs_fail(&r->failures, false, "process %u: ... and %llu more", p,
			(unsigned long long)slot->dropped);
	}
}

static void hs_mark_lost(struct hs_procs *pr, unsigned int p)
{
	struct hs_thread *threads = hs_threads_of(pr, p);
	unsigned int i;

	for (i = 0; i < pr->per_process; i++) {
		threads[i].lost = true;
	}
}

/* Records how child `p` ended, from its wait status. */
static void hs_ended(struct hs_runner *r, unsigned int p, int status)
{
	struct hs_procs *pr = r->procs;
	struct hs_proc_result *res = &pr->result.proc[p];
	struct hs_proc_slot *slot = &pr->area->proc[p];
	uint32_t state = atomic_load(&slot->state);

	pr->reaped[p] = true;
	res->ended_at_s = hs_run_seconds(r);
	if (WIFSIGNALED(status)) {
		res->signal = WTERMSIG(status);
		res->end = pr->killed[p] && res->signal == SIGKILL ? HS_PROC_KILLED : HS_PROC_DIED;
	} else {
		res->exit_code = WEXITSTATUS(status);
		res->end = state >= HS_STATE_DONE ? HS_PROC_EXITED : HS_PROC_DIED;
	}
	hs_merge_failures(r, p);
	if (res->end == HS_PROC_EXITED) {
		return;
	}
	hs_mark_lost(pr, p);
	if (res->end == HS_PROC_KILLED) {
		return;
	}
	pr->lost_unasked = true;
	pr->reclaim_pending = true;
	if (slot->attach_rc != 0) {
		hs_fail(&r->failures, false,
			"worker process %u (pid %ld) could not attach to the shared heap: "
			"k_heap_attach returned %d (%s)",
			p, (long)pr->pid[p], slot->attach_rc, strerror(-slot->attach_rc));
	} else if (res->signal != 0) {
		hs_fail(&r->failures, false,
			"worker process %u (pid %ld) was killed by signal %d (%s) %.2f s into the "
			"run; seed %llu",
			p, (long)pr->pid[p], res->signal, strsignal(res->signal), res->ended_at_s,
			(unsigned long long)r->result.seed);
	} else {
		hs_fail(&r->failures, false,
			"worker process %u (pid %ld) exited with status %d before the run ended", p,
			(long)pr->pid[p], res->exit_code);
	}
}

/* Reaps every child that has ended, without waiting. */
static void hs_reap(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p;
	int status;

	for (p = 0; p < pr->count; p++) {
		if (pr->pid[p] > 0 && !pr->reaped[p] &&
		    waitpid(pr->pid[p], &status, WNOHANG) == pr->pid[p]) {
			hs_ended(r, p, status);
		}
	}
}

/* SIGKILLs every child still there and reaps it. */
static void hs_kill_all(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p;
	int status;

	for (p = 0; p < pr->count; p++) {
		if (pr->pid[p] > 0 && !pr->reaped[p]) {
			kill(pr->pid[p], SIGKILL);
		}
	}
	for (p = 0; p < pr->count; p++) {
		if (pr->pid[p] > 0 && !pr->reaped[p] &&
		    waitpid(pr->pid[p], &status, 0) == pr->pid[p]) {
			pr->reaped[p] = true;
		}
	}
}

/*
 * A child stopped making progress: the heap may be wedged, so nothing more
 * is tried. What was found before is printed first.
 */
static void __attribute__((noreturn))
hs_stuck(struct hs_runner *r, unsigned int p, const char *what)
{
	size_t i;

	pthread_mutex_lock(&r->failures.lock);
	for (i = 0; i < r->failures.count; i++) {
		fprintf(r->err, "heapstress: FAIL: %s\n", r->failures.messages[i]);
	}
	pthread_mutex_unlock(&r->failures.lock);
	fprintf(r->err,
		"heapstress: FAIL: worker process %u (pid %ld) did not %s within %llu s (a lost "
		"wake-up or a deadlock, maybe on a lock a dead process held); seed %llu\n",
		p, (long)r->procs->pid[p], what, (unsigned long long)(HS_STUCK_NS / HS_NS_PER_S),
		(unsigned long long)r->result.seed);
	fflush(NULL);
	hs_kill_all(r);
	_exit(HS_EXIT_FAIL);
}

/* Waits until every child that is still there reached `state`, reaping those that end. */
static void hs_await(struct hs_runner *r, enum hs_proc_state state, const char *what)
{
	struct hs_procs *pr = r->procs;
	uint64_t deadline = hs_now_ns() + HS_STUCK_NS, now;
	unsigned int p, behind;
	uint32_t seen;

	for (;;) {
		seen = atomic_load(&pr->area->event);
		hs_reap(r);
		behind = pr->count;
		for (p = 0; p < pr->count && behind == pr->count; p++) {
			if (pr->pid[p] > 0 && !pr->reaped[p] &&
			    atomic_load(&pr->area->proc[p].state) < (uint32_t)state) {
				behind = p;
			}
		}
		if (behind == pr->count) {
			return;
		}
		now = hs_now_ns();
		if (now >= deadline) {
			hs_stuck(r, behind, what);
		}
		hs_word_wait(&pr->area->event, seen,
			     now + HS_POLL_NS < deadline ? now + HS_POLL_NS : deadline);
	}
}

static void hs_set_phase(struct hs_procs *pr, enum hs_phase phase)
{
	hs_word_set(&pr->area->phase, (uint32_t)phase);
}

/*
 * k_heap_reclaim_dead from the parent; the result is added to the run's and,
 * when one process is expected, to its process's. False if the call failed.
 */
static bool hs_reclaim(struct hs_runner *r, int expected)
{
	struct hs_procs *pr = r->procs;
	struct hs_procs_result *res = &pr->result;
	struct k_heap_reclaimed got = {0};
	int rc = k_heap_reclaim_dead(&r->heap, &got);

	if (rc != 0) {
		hs_fail(&r->failures, false, "k_heap_reclaim_dead returned %d", rc);
		return false;
	}
	res->reclaim_calls++;
	res->reclaimed.processes += got.processes;
	res->reclaimed.blocks += got.blocks;
	res->reclaimed.bytes += got.bytes;
	res->reclaimed.waiters += got.waiters;
	if (expected >= 0) {
		res->proc[expected].reclaimed_known = true;
		res->proc[expected].reclaimed = got;
	}
	return true;
}

/* --kill-one=parked: asks the victim to park its threads; false if it died meanwhile. */
static bool hs_park_victim(struct hs_runner *r, unsigned int p)
{
	struct hs_procs *pr = r->procs;
	struct hs_proc_slot *slot = &pr->area->proc[p];
	uint64_t deadline = hs_now_ns() + HS_STUCK_NS, now;
	uint32_t seen;

	atomic_store(&slot->park_request, 1);
	for (;;) {
		seen = atomic_load(&pr->area->event);
		hs_reap(r);
		if (pr->reaped[p]) {
			return false;
		}
		if (atomic_load(&slot->parked_for_kill) != 0) {
			return true;
		}
		now = hs_now_ns();
		if (now >= deadline) {
			hs_stuck(r, p, "park its threads to be killed");
		}
		hs_word_wait(&pr->area->event, seen, now + HS_POLL_NS);
	}
}

/* --kill-one: SIGKILL the victim, reap it, reclaim its blocks while the rest run, and validate. */
static void hs_kill_victim(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p = (unsigned int)pr->victim;
	unsigned int failures_before;
	int status;

	if (r->opt->kill_parked && !hs_park_victim(r, p)) {
		return;
	}
	pr->killed[p] = true;
	kill(pr->pid[p], SIGKILL);
	if (waitpid(pr->pid[p], &status, 0) != pr->pid[p]) {
		hs_fail(&r->failures, false, "cannot reap the killed process %u (pid %ld): %s", p,
			(long)pr->pid[p], strerror(errno));
		return;
	}
	hs_ended(r, p, status);
	if (pr->result.proc[p].end != HS_PROC_KILLED || hs_heap_suspect(&r->failures)) {
		return;
	}
	if (!hs_reclaim(r, (int)p)) {
		hs_fail(&r->failures, false,
			"the heap could not be reclaimed after process %u was killed%s", p,
			r->opt->kill_parked
			    ? ""
			    : " (if it was marked broken, the process died inside a "
			      "heap update; --kill-one=parked kills it between calls)");
		return;
	}
	failures_before = r->result.validation_failures;
	hs_validate(r, "right after reclaiming the killed process");
	hs_check(r, "heap validates after the kill",
		 r->result.validation_failures == failures_before,
		 "sys_heap_validate %.2f s into the run, right after k_heap_reclaim_dead, with the "
		 "other processes running",
		 hs_run_seconds(r));
}

static bool hs_kill_due(struct hs_runner *r, uint64_t now)
{
	struct hs_procs *pr = r->procs;
	struct hs_thread *threads;
	uint64_t done = 0, quota = 0;
	unsigned int p, i;
	uint32_t state;

	if (pr->victim < 0) {
		return false;
	}
	p = (unsigned int)pr->victim;
	if (pr->killed[p] || pr->reaped[p]) {
		return false;
	}
	if (r->opt->ops == 0) {
		return now >= r->start_ns + (uint64_t)(r->opt->duration_s * 1e9 / 2);
	}
	state = atomic_load(&pr->area->proc[p].state);
	if (state < HS_STATE_RUNNING) {
		return false;
	}
	if (state >= HS_STATE_FINISHED) {
		return true;
	}
	threads = hs_threads_of(pr, p);
	for (i = 0; i < pr->per_process; i++) {
		done += atomic_load_explicit(&threads[i].worker.ops_done, memory_order_relaxed);
		quota += threads[i].worker.quota;
	}
	return quota != 0 && done >= quota / 2;
}

/* In an op-count run: every child still running spent its quota. */
static bool hs_all_finished(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p;

	if (r->opt->ops == 0) {
		return false;
	}
	for (p = 0; p < pr->count; p++) {
		if (!pr->reaped[p] && atomic_load(&pr->area->proc[p].state) < HS_STATE_FINISHED) {
			return false;
		}
	}
	return true;
}

/* Phase 2 from the parent: as run.c's hs_drive, plus deaths, the kill, and children's stops. */
static void hs_procs_run(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	const struct hs_options *opt = r->opt;
	struct hs_clock clock;
	uint64_t now, wake, due;
	uint32_t seen;

	hs_clock_start(r, &clock);
	for (;;) {
		seen = atomic_load(&pr->area->event);
		hs_reap(r);
		now = hs_now_ns();
		if (hs_stopping(pr) || hs_failed(&r->failures)) {
			break;
		}
		/* Before the deadline: a parent that woke up late still kills. */
		if (hs_kill_due(r, now)) {
			hs_kill_victim(r);
			continue;
		}
		if (now >= clock.deadline || hs_all_finished(r)) {
			break;
		}
		hs_clock_tick(r, &clock, now);
		wake = now + HS_POLL_NS;
		due = hs_clock_next(&clock);
		wake = due < wake ? due : wake;
		hs_word_wait(&pr->area->event, seen, wake);
	}
	r->end_ns = hs_now_ns();
	if (r->tty && !opt->quiet) {
		fputs("\r\033[K", r->err);
		fflush(r->err);
	}
}

/* With every child attached: every process reaches the heap through its own address. */
static void hs_check_mappings(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	struct hs_procs_result *res = &pr->result;
	unsigned int p, q;

	res->distinct_mappings = true;
	for (p = 0; p < pr->count; p++) {
		res->proc[p].mapping = (uintptr_t)pr->area->proc[p].mapping;
		res->proc[p].owner_tag = pr->area->proc[p].owner_tag;
		if (pr->area->proc[p].attach_rc != 0 ||
		    res->proc[p].mapping == res->parent_mapping) {
			res->distinct_mappings = false;
		}
		for (q = 0; q < p; q++) {
			if (res->proc[q].mapping == res->proc[p].mapping) {
				res->distinct_mappings = false;
			}
		}
	}
}

/* The wake-up relay among the ring members, when the run is healthy enough for it. */
static void hs_relay(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	struct hs_area *a = pr->area;
	uint32_t steps = 0, k;

	if (!hs_failed(&r->failures) && !pr->lost_unasked && pr->nmembers >= 2) {
		steps = pr->nmembers;
	}
	for (k = 0; k < steps; k++) {
		a->relay[k].filler = pr->members[k];
		a->relay[k].waiter = pr->members[(k + 1) % pr->nmembers];
	}
	a->relay_steps = steps;
	hs_set_phase(pr, HS_PHASE_RELAY);
	hs_await(r, HS_STATE_RELAYED, "finish the wake-up relay");
	pr->result.relay_steps = steps;
	memcpy(pr->result.relay, a->relay, sizeof(pr->result.relay));
}

/* Fills the per-process results from the slots and the threads' counters. */
static void hs_fill_results(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	const struct hs_options *opt = r->opt;
	struct hs_thread *threads;
	unsigned int p, i;

	for (p = 0; p < pr->count; p++) {
		struct hs_proc_result *res = &pr->result.proc[p];

		threads = hs_threads_of(pr, p);
		res->index = p;
		res->pid = (long)pr->pid[p];
		res->workers = opt->threads;
		res->storm_threads = (unsigned int)opt->storm_threads;
		memset(&res->counts, 0, sizeof(res->counts));
		for (i = 0; i < pr->per_process; i++) {
			hs_counts_add(&res->counts, &threads[i].worker.counts);
		}
	}
}

/* Forks the worker processes; -1 (and none left running) when one cannot be forked. */
static int hs_fork_all(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p;
	pid_t pid;

	fflush(NULL);
	for (p = 0; p < pr->count; p++) {
		pid = fork();
		if (pid < 0) {
			hs_usage_error(r->err, "--processes: cannot fork worker process %u: %s", p,
				       strerror(errno));
			hs_kill_all(r);
			return -1;
		}
		if (pid == 0) {
			hs_child_main(r, p);
		}
		pr->pid[p] = pid;
		pr->result.proc[p].pid = (long)pid;
	}
	return 0;
}

/* Reclaims the processes that died unasked, now that nobody can still be using their blocks. */
static void hs_reclaim_unasked(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	int only = -1;
	unsigned int p, died = 0;

	for (p = 0; p < pr->count; p++) {
		if (pr->result.proc[p].end == HS_PROC_DIED) {
			only = (int)p;
			died++;
		}
	}
	hs_reclaim(r, died == 1 ? only : -1);
}

int hs_procs_drive(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	unsigned int p;

	if (hs_fork_all(r) != 0) {
		return -1;
	}
	hs_await(r, HS_STATE_READY, "attach to the heap");
	hs_check_mappings(r);
	r->start_ns = hs_now_ns();
	hs_failures_start_clock(&r->failures, r->start_ns);
	hs_set_phase(pr, HS_PHASE_RUN);
	hs_procs_run(r);
	hs_set_phase(pr, HS_PHASE_PARK);
	hs_await(r, HS_STATE_PARKED, "park its threads");
	hs_observe(r, HS_OBSERVE_SAMPLE);
	hs_record_sample(r, hs_now_ns(), false);
	for (p = 0; p < pr->count; p++) {
		if (!pr->reaped[p] && atomic_load(&pr->area->proc[p].heap_suspect)) {
			hs_fail(&r->failures, true,
				"worker process %u found the heap's metadata untrustworthy", p);
		}
	}
	hs_inspect(r);
	hs_set_phase(pr, HS_PHASE_RELEASE);
	hs_await(r, HS_STATE_RELEASED, "free what its threads hold");
	if (pr->reclaim_pending && !hs_heap_suspect(&r->failures)) {
		hs_reclaim_unasked(r);
	}
	hs_relay(r);
	hs_set_phase(pr, HS_PHASE_EXIT);
	hs_await(r, HS_STATE_REAPED, "exit");
	hs_fill_results(r);
	if (!hs_heap_suspect(&r->failures)) {
		pr->result.final_reclaim_done =
		    k_heap_reclaim_dead(&r->heap, &pr->result.final_reclaim) == 0;
	}
	return 0;
}

bool hs_procs_holdings(struct hs_runner *r, size_t *blocks, size_t *usable_bytes)
{
	struct hs_procs *pr = r->procs;
	unsigned int p, m, i;

	*blocks = 0;
	*usable_bytes = 0;
	for (p = 0; p < pr->count; p++) {
		if (!pr->reaped[p] && atomic_load(&pr->area->proc[p].state) >= HS_STATE_PARKED) {
			*blocks += (size_t)pr->area->proc[p].held_blocks;
			*usable_bytes += (size_t)pr->area->proc[p].held_usable;
		}
	}
	if (pr->nmembers >= 2) {
		for (m = 0; m < pr->nmembers; m++) {
			for (i = 0; i < r->opt->threads; i++) {
				hs_xring_holdings(hs_ring_of(pr, r->opt, pr->members[m], i),
						  &r->heap, r->region, r->opt->heap_size, blocks,
						  usable_bytes);
			}
		}
	}
	return !pr->lost_unasked;
}

bool hs_procs_accounted(const struct hs_runner *r)
{
	return !r->procs->lost_unasked;
}

static void hs_check_ends(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	const struct hs_proc_result *bad = NULL, *res;
	unsigned int p, exited = 0, killed = 0;

	for (p = 0; p < pr->count; p++) {
		res = &pr->result.proc[p];
		if (res->end == HS_PROC_EXITED && res->exit_code == 0) {
			exited++;
		} else if (res->end == HS_PROC_KILLED && (int)p == pr->victim) {
			killed++;
		} else if (bad == NULL) {
			bad = res;
		}
	}
	if (bad == NULL) {
		hs_check(r, "every process lived to the end", true, "%u exited normally%s", exited,
			 killed != 0 ? ", and the one --kill-one killed" : "");
	} else if (bad->end == HS_PROC_EXITED || (bad->end == HS_PROC_DIED && bad->signal == 0)) {
		hs_check(r, "every process lived to the end", false,
			 "process %u (pid %ld) exited with status %d", bad->index, bad->pid,
			 bad->exit_code);
	} else if (bad->signal != 0) {
		hs_check(r, "every process lived to the end", false,
			 "process %u (pid %ld) was killed by signal %d (%s) %.2f s into the run",
			 bad->index, bad->pid, bad->signal, strsignal(bad->signal),
			 bad->ended_at_s);
	} else {
		hs_check(r, "every process lived to the end", false,
			 "process %u (pid %ld) did not end", bad->index, bad->pid);
	}
}

static void hs_check_kill(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	const struct hs_proc_result *v = &pr->result.proc[pr->victim];
	int64_t held = hs_counts_outstanding(&v->counts);
	int64_t slack = r->opt->kill_parked ? 0 : (int64_t)pr->per_process;
	int64_t got = (int64_t)v->reclaimed.blocks;

	if (v->end != HS_PROC_KILLED || !v->reclaimed_known) {
		hs_check(r, "the killed process's blocks were reclaimed", false,
			 "process %u was not killed and reclaimed as --kill-one asked", v->index);
		return;
	}
	hs_check(r, "the killed process's blocks were reclaimed",
		 v->reclaimed.processes == 1 && got >= held - slack && got <= held + slack,
		 "k_heap_reclaim_dead found %u dead process and freed %zu blocks (%zu bytes, %u "
		 "waits); by its counters it held %lld%s",
		 v->reclaimed.processes, v->reclaimed.blocks, v->reclaimed.bytes,
		 v->reclaimed.waiters, (long long)held,
		 slack != 0 ? ", give or take one per thread for the call it was killed in"
			    : ", its threads parked");
}

static void hs_check_relay(struct hs_runner *r)
{
	const struct hs_procs_result *res = &r->procs->result;
	const struct hs_relay_step *s;
	uint64_t longest = 0;
	unsigned int k;

	for (k = 0; k < res->relay_steps; k++) {
		s = &res->relay[k];
		longest = s->wait_ns > longest ? s->wait_ns : longest;
		if (s->filled_blocks == 0) {
			hs_check(r, "a blocked allocation is served from another process", false,
				 "step %u: process %u could not fill the heap with %zu-byte blocks",
				 k + 1, s->filler, res->relay_block);
			return;
		}
		if (!s->waiter_seen || !s->served) {
			hs_check(r, "a blocked allocation is served from another process", false,
				 "step %u: process %u %s (waited %.2f ms for process %u's free)",
				 k + 1, s->waiter,
				 !s->served ? "got no block"
					    : "was served without being seen queued",
				 (double)s->wait_ns / 1e6, s->filler);
			return;
		}
		if (!s->filler_owner_ok || !s->waiter_owner_ok) {
			hs_check(r, "a blocked allocation is served from another process", false,
				 "step %u: k_heap_block_owner did not name the process that "
				 "allocated the %s's block",
				 k + 1, s->filler_owner_ok ? "waiter" : "filler");
			return;
		}
	}
	hs_check(r, "a blocked allocation is served from another process", true,
		 "%u of %u: each waiter blocked on a full heap got the block another process "
		 "freed; longest wait %.2f ms",
		 res->relay_steps, res->relay_steps, (double)longest / 1e6);
}

void hs_procs_final_checks(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;
	const struct hs_procs_result *res = &pr->result;
	const struct hs_counts *t = &r->result.total;
	int rc;

	hs_check(r, "each process maps the heap at its own address", res->distinct_mappings,
		 "the parent at %#llx, the %u worker processes each elsewhere",
		 (unsigned long long)res->parent_mapping, res->count);
	hs_check_ends(r);
	if (!pr->lost_unasked) {
		hs_check(r, "every block sent to another process was received",
			 t->cross_sent == t->cross_received,
			 "%llu sent, %llu received, checked and freed by the receiver",
			 (unsigned long long)t->cross_sent, (unsigned long long)t->cross_received);
	}
	if (pr->victim >= 0) {
		hs_check_kill(r);
	}
	if (res->relay_steps != 0) {
		hs_check_relay(r);
	}
	if (res->final_reclaim_done) {
		hs_check(r, "no process left attached",
			 res->final_reclaim.processes == 0 && res->final_reclaim.blocks == 0,
			 "k_heap_reclaim_dead after every process exited found %u dead processes "
			 "and %zu blocks",
			 res->final_reclaim.processes, res->final_reclaim.blocks);
	}
	if (hs_heap_suspect(&r->failures)) {
		return;
	}
	rc = k_heap_detach(&r->heap);
	r->heap_live = rc != 0;
	hs_check(r, "the parent detaches last", rc == 0, "k_heap_detach returned %d", rc);
}

void hs_procs_free(struct hs_runner *r)
{
	struct hs_procs *pr = r->procs;

	if (pr == NULL) {
		return;
	}
	hs_kill_all(r);
	if (r->heap_live && !hs_heap_suspect(&r->failures) && k_heap_detach(&r->heap) == 0) {
		r->heap_live = false;
	}
	if (r->region != NULL && !r->heap_live) {
		munmap(r->region, r->opt->heap_size);
	}
	r->region = NULL;
	if (pr->arena != NULL) {
		munmap(pr->arena, pr->arena_bytes);
	}
	if (pr->memfd >= 0) {
		close(pr->memfd);
	}
	r->threads = NULL;
	r->nthreads = 0;
	r->result.procs = NULL;
	if (pr->area != NULL) {
		munmap(pr->area, pr->area_bytes);
	}
	free(pr);
	r->procs = NULL;
}
