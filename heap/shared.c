/*
 * Heaps in shared memory: the region header, attaching and detaching,
 * owner tags, the robust heap lock and what happens when its holder dies,
 * waiting across processes, and reclaiming the blocks of dead processes.
 *
 * Region layout:
 *   offset 0            struct shared_header (magic, version, ABI signature,
 *                       where the heap is, state, the process table, the
 *                       waiter records, the room futex)
 *   heap_offset         an ordinary k_heap region (z_heap, control block,
 *                       chunks), every link in it a chunk id or an offset
 * A pointer is never stored in the region: each process keeps its own view
 * (struct k_heap) of where the region is mapped.
 *
 * Invariants:
 *   - magic is written last at format, after the header's check word, so an
 *     attach either sees a complete header or refuses the region;
 *   - state only moves FORMATTING -> READY -> BROKEN, and BROKEN is final;
 *   - the process table, the waiter records, room_waiters and the wait
 *     queue are changed only under the heap lock; a process entry's
 *     `waiting` count is atomic (it moves outside the lock, with
 *     waiter_count);
 *   - every block a process allocates carries its owner tag in the FULL
 *     trailer (hardening.c), written under the lock that made it a block;
 *   - a tag is (generation << 8 | entry + 1): never 0, and an entry reused
 *     by a later process gets a new generation, so reclaiming one owner
 *     never frees another's blocks.
 *
 * Death of a lock holder. The heap lock is a robust, process-shared mutex:
 * when its holder dies the kernel hands it to the next locker with
 * EOWNERDEAD. Before anything else touches the heap, that process rebuilds
 * what follows from the chunk headers (left sizes, free lists, bitmap,
 * counters; z_heap_rebuild), frees a block the dead holder had allocated but
 * not yet tagged, re-queues the waiter records, and then checks the whole
 * heap (invariants I1..I5 and the wait queue). If that passes the lock is
 * made consistent and the operation goes on; otherwise (a size field was
 * half written) the region is marked BROKEN for every process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "heap/k_heap_internal.h"
#include "smp/atomic.h"

#define SHARED_MAGIC   0x314d53706165686bull /* "kheapSM1" */
#define SHARED_WAITERS 128u

/* Handles one process may have attached at a time (the fork registry). */
#define SHARED_MAX_HANDLES 256

enum shared_state {
	SHARED_FORMATTING = 1,
	SHARED_READY = 2,
	SHARED_BROKEN = 3,
};

struct shared_process {
	uint32_t pid;
	/* Bumped each time the entry is claimed; part of the owner tag. */
	uint32_t generation;
	/* The process's start time (clock ticks after boot), so a pid that
	 * was reused by a new process is not mistaken for the attached one.
	 */
	uint64_t start_time;
	uint32_t attached;
	/* Threads of this process in an allocation's slow path (atomic). */
	unsigned int waiting;
};

struct shared_header {
	uint64_t magic;
	uint32_t version;
	uint32_t abi;
	uint64_t region_bytes;
	uint64_t heap_offset;
	uint64_t heap_bytes;
	/* Where struct z_heap and the control block are, from the start. */
	uint64_t z_offset;
	uint64_t control_offset;
	/* A hash of the fields above; garbage that happens to start with the
	 * magic fails it.
	 */
	uint32_t check;
	uint32_t state;
	/* Times a dead holder's lock was taken over and the heap passed. */
	uint64_t recoveries;
	/* The cache bound the heap was formatted with (0: no caches). */
	uint32_t cache_percent;
	uint32_t reserved;
	/* Futex word for waiters that found every waiter record taken: bumped
	 * when memory or a record comes back while room_waiters != 0.
	 */
	uint32_t room_generation;
	uint32_t room_waiters;
	struct shared_process processes[KHEAP_SHARED_MAX_PROCESSES];
	struct kheap_waiter waiters[SHARED_WAITERS];
};

static inline struct shared_header *header_of(const struct k_heap_control *ctl)
{
	return (struct shared_header *)((uintptr_t)ctl - (uintptr_t)ctl->region_offset);
}

/* FNV-1a over 32-bit words. */
static uint32_t hash_words(const uint32_t *words, size_t count)
{
	uint32_t hash = 2166136261u;

	for (size_t i = 0; i < count; i++) {
		hash ^= words[i];
		hash *= 16777619u;
	}
	return hash;
}

/* Everything two processes must agree on to share a region's layout. */
static uint32_t abi_signature(void)
{
	const uint32_t facts[] = {
	    (uint32_t)sizeof(void *),
	    (uint32_t)sizeof(size_t),
	    (uint32_t)sizeof(pthread_mutex_t),
	    (uint32_t)sizeof(struct shared_header),
	    (uint32_t)sizeof(struct k_heap_control),
	    (uint32_t)sizeof(struct kheap_cpu_cache),
	    (uint32_t)sizeof(struct kheap_waiter),
	    (uint32_t)sizeof(struct z_heap),
	    KHEAP_MAX_CPUS,
	    KHEAP_CACHE_CLASSES,
	    CHUNK_UNIT,
	    Z_HEAP_MAGIC,
	    (uint32_t)__BYTE_ORDER__,
	};

	return hash_words(facts, sizeof(facts) / sizeof(facts[0]));
}

static uint32_t header_check(const struct shared_header *hdr)
{
	const uint64_t fields[] = {
	    hdr->magic,	      hdr->version,    hdr->abi,      hdr->region_bytes,
	    hdr->heap_offset, hdr->heap_bytes, hdr->z_offset, hdr->control_offset,
	};

	return hash_words((const uint32_t *)fields, sizeof(fields) / (sizeof(uint32_t)));
}

static inline bool region_broken(const struct shared_header *hdr)
{
	return kheap_load_acquire_32(&hdr->state) == SHARED_BROKEN;
}

static void report_broken(struct k_heap_control *ctl)
{
	(void)ctl;
	kheap_raise_fault(KHEAP_FAULT_CORRUPT_HEAP, NULL, NULL,
			  "shared heap is broken: a process died while changing it, and it is "
			  "no longer served");
}

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- owner tags and the process table -------------------------------- */

static inline uint32_t make_tag(uint32_t entry, uint32_t generation)
{
	return (generation & 0xffffu) << 8 | (entry + 1);
}

static inline int tag_entry(uint32_t tag)
{
	return (int)(tag & 0xffu) - 1;
}

/*
 * Reads state and start time from /proc/<pid>/stat. Returns false if the
 * process does not exist or is a zombie (it has exited; only its parent has
 * not collected it yet).
 */
static bool process_running(uint32_t pid, uint64_t *start_time)
{
	char path[64], text[1024];
	const char *after_name;
	int proc, fd;
	unsigned long long started;
	char state;
	size_t length;
	FILE *f;

	/* Relative to a descriptor of /proc: user-mode emulators answer
	 * "/proc/<own pid>/..." paths themselves (with the emulator's start
	 * time when the process was forked without exec), not this one.
	 */
	snprintf(path, sizeof(path), "%u/stat", pid);
	proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = proc < 0 ? -1 : openat(proc, path, O_RDONLY | O_CLOEXEC);
	if (proc >= 0)
		close(proc);
	f = fd < 0 ? NULL : fdopen(fd, "r");
	if (f == NULL)
		return kill((pid_t)pid, 0) == 0 || errno == EPERM;
	length = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[length] = '\0';
	/* The command name is in parentheses and may itself contain them. */
	after_name = strrchr(text, ')');
	if (after_name == NULL ||
	    sscanf(
		after_name + 1,
		" %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		&state, &started) != 2)
		return false;
	if (start_time != NULL)
		*start_time = started;
	return state != 'Z' && state != 'X';
}

/*
 * Start times are compared with a tick of slack: under user-mode emulation
 * a process's view of its own /proc entry can differ by one tick from what
 * other processes read. A pid reused within two ticks (20 ms at the usual
 * 100 Hz) would have to cycle through the whole pid space first.
 */
#define START_TIME_SLACK 2

static bool entry_alive(const struct shared_process *p)
{
	uint64_t started = 0;

	if (!process_running(p->pid, &started))
		return false;
	if (p->start_time == 0)
		return true;
	return started + START_TIME_SLACK >= p->start_time &&
	       started <= p->start_time + START_TIME_SLACK;
}

/* Heap lock held: a free entry for this process, or -1. */
static int claim_process(struct shared_header *hdr)
{
	for (uint32_t i = 0; i < KHEAP_SHARED_MAX_PROCESSES; i++) {
		struct shared_process *p = &hdr->processes[i];
		uint64_t started = 0;

		if (p->attached)
			continue;
		p->pid = (uint32_t)getpid();
		process_running(p->pid, &started);
		p->start_time = started;
		p->generation = (p->generation + 1) & 0xffffu;
		if (p->generation == 0)
			p->generation = 1;
		kheap_store_release_uint(&p->waiting, 0);
		p->attached = 1;
		return (int)i;
	}
	return -1;
}

/* ---- handles this process attached, for fork() ---------------------- */

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct k_heap *attached_handles[SHARED_MAX_HANDLES];
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

/*
 * In a forked child every inherited handle still carries the parent's owner
 * tag and process entry; allocating through it would file the child's
 * blocks under the parent. The child's copies are marked FORKED, which the
 * slow path reports (k_heap.c), and the fast path skips as not READY.
 */
static void mark_inherited_handles(void)
{
	for (int i = 0; i < SHARED_MAX_HANDLES; i++) {
		if (attached_handles[i] != NULL)
			kheap_store_release_uint(&attached_handles[i]->init_state,
						 KHEAP_STATE_FORKED);
		attached_handles[i] = NULL;
	}
	pthread_mutex_init(&handles_lock, NULL);
}

static void install_fork_hook(void)
{
	pthread_atfork(NULL, NULL, mark_inherited_handles);
}

static bool remember_handle(struct k_heap *h)
{
	bool stored = false;

	pthread_once(&fork_hook_once, install_fork_hook);
	pthread_mutex_lock(&handles_lock);
	for (int i = 0; i < SHARED_MAX_HANDLES && !stored; i++) {
		if (attached_handles[i] == NULL || attached_handles[i] == h) {
			attached_handles[i] = h;
			stored = true;
		}
	}
	pthread_mutex_unlock(&handles_lock);
	return stored;
}

static void forget_handle(struct k_heap *h)
{
	pthread_mutex_lock(&handles_lock);
	for (int i = 0; i < SHARED_MAX_HANDLES; i++)
		if (attached_handles[i] == h)
			attached_handles[i] = NULL;
	pthread_mutex_unlock(&handles_lock);
}

/* ---- the robust heap lock ------------------------------------------- */

/* Heap lock held: is the wait queue a well-formed list of records? */
static bool wait_queue_intact(struct k_heap_control *ctl)
{
	struct shared_header *hdr = header_of(ctl);
	uintptr_t base = (uintptr_t)hdr;
	uint32_t seen = 0;
	kheap_waiter_ref prev = 0;

	for (kheap_waiter_ref ref = ctl->waitq.head; ref != 0;) {
		struct kheap_waiter *w;
		uintptr_t index;

		if (ref < offsetof(struct shared_header, waiters) ||
		    (ref - offsetof(struct shared_header, waiters)) % sizeof(struct kheap_waiter) !=
			0)
			return false;
		index = (uintptr_t)(ref - offsetof(struct shared_header, waiters)) /
			sizeof(struct kheap_waiter);
		if (index >= SHARED_WAITERS || ++seen > SHARED_WAITERS)
			return false;
		w = kheap_waiter_at(base, ref);
		if (!w->in_use || w->prev != prev)
			return false;
		prev = ref;
		ref = w->next;
	}
	return ctl->waitq.tail == prev;
}

/*
 * A dying holder may have been between marking a chunk USED and writing its
 * owner tag (every allocation path tags under the same lock hold): such a
 * block has an intact trailer with tag 0, and nobody else can ever free it.
 */
static bool unfinished_allocation(struct z_heap *z, chunkid_t c, void *arg)
{
	(void)arg;
	return c != z->owner_control && !chunk_cached(z, c) && z_heap_trailer_intact(z, c, NULL) &&
	       z_heap_trailer_tag(z, c) == 0;
}

/* Re-queues every record still waiting; arrival order is not recoverable. */
static void rebuild_wait_queue(struct k_heap_control *ctl)
{
	struct shared_header *hdr = header_of(ctl);

	ctl->waitq.head = 0;
	ctl->waitq.tail = 0;
	for (uint32_t i = 0; i < SHARED_WAITERS; i++) {
		struct kheap_waiter *w = &hdr->waiters[i];

		if (w->in_use && kheap_load_acquire_32(&w->state) == KHEAP_WAITER_WAITING)
			kheap_waitq_append(&ctl->waitq, (uintptr_t)hdr, w);
	}
}

/*
 * Heap lock taken over from a holder that died: repairs whatever single
 * update it may have left half done, then checks the whole heap. False
 * means the heap cannot be trusted.
 */
static bool recover_heap(struct k_heap_control *ctl)
{
	struct z_heap *z = control_heap(ctl);
	struct z_heap_walk_totals totals;
	const char *why;

	if (!z_heap_rebuild(z, &why))
		return false;
	z_heap_free_where(z, unfinished_allocation, NULL, NULL);
	rebuild_wait_queue(ctl);
	kheap_note_pressure(ctl);
	return z_heap_check_invariants(z, &totals, &why) && wait_queue_intact(ctl);
}

/*
 * Marks the region broken and wakes every sleeper, which would otherwise
 * wait for ever. A woken waiter sees SERVED but never trusts `result`
 * without the heap lock, which it can no longer take: it returns NULL.
 */
static void mark_broken(struct shared_header *hdr)
{
	kheap_store_release_32(&hdr->state, SHARED_BROKEN);
	for (uint32_t i = 0; i < SHARED_WAITERS; i++) {
		if (!hdr->waiters[i].in_use)
			continue;
		kheap_store_release_32(&hdr->waiters[i].state, KHEAP_WAITER_SERVED);
		futex_wake_all(&hdr->waiters[i].state);
	}
	futex_wake_all(&hdr->room_generation);
}

/* Takes the heap lock of a region that is not broken; `report` says
 * whether finding it broken is a fault (an operation) or an error code
 * (attach).
 */
static bool lock_region(struct k_heap_control *ctl, bool report)
{
	struct shared_header *hdr = header_of(ctl);
	int rc;

	if (region_broken(hdr)) {
		if (report)
			report_broken(ctl);
		return false;
	}
	rc = pthread_mutex_lock(&ctl->shared_lock);
	if (rc == EOWNERDEAD) {
		if (recover_heap(ctl))
			kheap_shared_note_recovery(ctl);
		else
			mark_broken(hdr);
		pthread_mutex_consistent(&ctl->shared_lock);
	} else if (rc != 0) {
		/* ENOTRECOVERABLE: only if a holder unlocked without making a
		 * dead owner's lock consistent, which this file never does.
		 */
		mark_broken(hdr);
		if (report)
			report_broken(ctl);
		return false;
	}
	if (region_broken(hdr)) {
		pthread_mutex_unlock(&ctl->shared_lock);
		if (report)
			report_broken(ctl);
		return false;
	}
	return true;
}

bool kheap_shared_lock(struct k_heap_control *ctl)
{
	return lock_region(ctl, true);
}

void kheap_shared_unlock(struct k_heap_control *ctl)
{
	pthread_mutex_unlock(&ctl->shared_lock);
}

bool kheap_shared_usable(struct k_heap *h, struct k_heap_control *ctl)
{
	(void)h;
	if (!region_broken(header_of(ctl)))
		return true;
	report_broken(ctl);
	return false;
}

/* ---- waiting across processes --------------------------------------- */

void kheap_shared_count_waiting(struct k_heap *h, struct k_heap_control *ctl, bool begin)
{
	struct shared_process *p = &header_of(ctl)->processes[tag_entry(h->owner_tag)];

	if (begin)
		kheap_inc_uint(&p->waiting);
	else
		kheap_dec_uint(&p->waiting);
}

struct kheap_waiter *kheap_shared_claim_waiter(struct k_heap *h, struct k_heap_control *ctl)
{
	struct shared_header *hdr = header_of(ctl);

	for (uint32_t i = 0; i < SHARED_WAITERS; i++) {
		struct kheap_waiter *w = &hdr->waiters[i];

		if (w->in_use)
			continue;
		memset(w, 0, sizeof(*w));
		w->owner_tag = h->owner_tag;
		w->in_use = 1;
		return w;
	}
	return NULL;
}

void kheap_shared_release_waiter(struct k_heap_control *ctl, struct kheap_waiter *w)
{
	w->in_use = 0;
	kheap_shared_note_room(ctl);
}

void kheap_shared_note_room(struct k_heap_control *ctl)
{
	struct shared_header *hdr = header_of(ctl);

	if (hdr->room_waiters == 0)
		return;
	kheap_store_release_32(&hdr->room_generation, hdr->room_generation + 1);
	futex_wake_all(&hdr->room_generation);
}

uint32_t kheap_shared_room_begin(struct k_heap_control *ctl)
{
	struct shared_header *hdr = header_of(ctl);

	hdr->room_waiters++;
	return hdr->room_generation;
}

void kheap_shared_room_end(struct k_heap_control *ctl)
{
	header_of(ctl)->room_waiters--;
}

bool kheap_shared_room_wait(struct k_heap_control *ctl, uint32_t seen,
			    const struct timespec *deadline)
{
	struct shared_header *hdr = header_of(ctl);

	while (kheap_load_acquire_32(&hdr->room_generation) == seen && !region_broken(hdr)) {
		long rc = syscall(SYS_futex, &hdr->room_generation, FUTEX_WAIT_BITSET, seen,
				  deadline, NULL, FUTEX_BITSET_MATCH_ANY);

		if (rc == -1 && errno == ETIMEDOUT)
			return kheap_load_acquire_32(&hdr->room_generation) != seen;
	}
	return true;
}

/* ---- format, attach, detach ----------------------------------------- */

static void publish_handle(struct k_heap *h, void *mem, uint32_t tag)
{
	h->owner_tag = tag;
	h->shared_region = mem;
	kheap_store_release_uint(&h->init_state, KHEAP_STATE_READY);
}

/* Heap lock taken by the caller: joins the process table. */
static int join(struct k_heap *h, struct k_heap_control *ctl, void *mem)
{
	struct shared_header *hdr = header_of(ctl);
	int entry = claim_process(hdr);
	uint32_t tag;

	if (entry < 0)
		return -EUSERS;
	tag = make_tag((uint32_t)entry, hdr->processes[entry].generation);
	if (!remember_handle(h)) {
		hdr->processes[entry].attached = 0;
		return -ENOMEM;
	}
	publish_handle(h, mem, tag);
	return 0;
}

int k_heap_init_shared(struct k_heap *h, void *mem, size_t bytes,
		       const struct k_heap_config *config)
{
	struct shared_header *hdr = mem;
	pthread_mutexattr_t attr;
	struct k_heap_control *ctl;
	struct z_heap *z;
	size_t heap_offset =
	    (sizeof(*hdr) + KHEAP_CACHE_LINE - 1) & ~(size_t)(KHEAP_CACHE_LINE - 1);
	int rc;

	if (h == NULL || mem == NULL || (uintptr_t)mem % KHEAP_CACHE_LINE != 0 ||
	    bytes < KHEAP_SHARED_MIN_BYTES)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	memset(hdr, 0, sizeof(*hdr));
	kheap_store_release_32(&hdr->state, SHARED_FORMATTING);

	rc = kheap_format(h, (uint8_t *)mem + heap_offset, bytes - heap_offset,
			  config == NULL ? KHEAP_DEFAULT_CACHE_PERCENT : config->cache_percent);
	if (rc != 0)
		return rc;
	ctl = h->control;
	z = h->heap.heap;
	ctl->process_shared = 1;
	ctl->region_offset = (uint64_t)((uintptr_t)ctl - (uintptr_t)mem);
	/* The owner tag lives in FULL's trailer. With 4-byte headers a 2-unit
	 * block's trailer would overlap a parked block's links, which must not
	 * clobber the tag before the block is marked CACHED (cpu_cache.c).
	 */
	if (z->hardening < SYS_HEAP_HARDENING_FULL)
		z->hardening = SYS_HEAP_HARDENING_FULL;
	if (caches_enabled(ctl) && ctl->min_class_units < 3)
		ctl->min_class_units = 3;
	kheap_cache_configure(ctl);

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&ctl->shared_lock, &attr);
	for (uint32_t i = 0; i < ctl->cpu_count && rc == 0; i++)
		rc = pthread_mutex_init(&ctl->cpus[i].shared_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc != 0)
		return -rc;
	hdr->cache_percent = h->cache_percent;

	hdr->version = KHEAP_SHARED_VERSION;
	hdr->abi = abi_signature();
	hdr->region_bytes = bytes;
	hdr->heap_offset = heap_offset;
	hdr->heap_bytes = bytes - heap_offset;
	hdr->z_offset = (uint64_t)((uintptr_t)z - (uintptr_t)mem);
	hdr->control_offset = ctl->region_offset;
	hdr->magic = SHARED_MAGIC;
	hdr->check = header_check(hdr);
	kheap_store_release_32(&hdr->state, SHARED_READY);

	lock_region(ctl, true);
	rc = join(h, ctl, mem);
	kheap_shared_unlock(ctl);
	return rc;
}

/* Does the heap the header describes hold together inside `bytes`? */
static bool heap_fits(const struct shared_header *hdr, size_t bytes)
{
	const uint8_t *region = (const uint8_t *)hdr;
	const struct z_heap *z;
	const struct k_heap_control *ctl;

	if (hdr->heap_offset < sizeof(*hdr) || hdr->heap_offset + hdr->heap_bytes > bytes ||
	    hdr->z_offset < hdr->heap_offset ||
	    hdr->z_offset + sizeof(struct z_heap) > hdr->heap_offset + hdr->heap_bytes ||
	    hdr->z_offset % CHUNK_UNIT != 0)
		return false;
	z = (const struct z_heap *)(region + hdr->z_offset);
	if (z->magic != Z_HEAP_MAGIC || z->owner_control == 0 ||
	    (z->header_bytes != 4 && z->header_bytes != 8) ||
	    hdr->z_offset - z->header_bytes + ((uint64_t)z->end_chunk + 1) * CHUNK_UNIT >
		hdr->heap_offset + hdr->heap_bytes ||
	    z->owner_control >= z->end_chunk)
		return false;
	if (hdr->control_offset != hdr->z_offset + (uint64_t)z->owner_control * CHUNK_UNIT ||
	    hdr->control_offset + sizeof(struct k_heap_control) > bytes)
		return false;
	ctl = (const struct k_heap_control *)(region + hdr->control_offset);
	return ctl->process_shared == 1 && ctl->region_offset == hdr->control_offset &&
	       ctl->control_chunk == z->owner_control && ctl->cpu_count <= KHEAP_MAX_CPUS;
}

int k_heap_attach(struct k_heap *h, void *mem, size_t bytes)
{
	struct shared_header *hdr = mem;
	struct k_heap_control *ctl;
	uint32_t state;
	int rc;

	if (h == NULL || mem == NULL || (uintptr_t)mem % KHEAP_CACHE_LINE != 0)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	if (bytes < sizeof(hdr->magic) || hdr->magic != SHARED_MAGIC)
		return -EINVAL;
	if (bytes < sizeof(*hdr))
		return -ERANGE;
	state = kheap_load_acquire_32(&hdr->state);
	if (state == SHARED_FORMATTING)
		return -EAGAIN;
	if (hdr->version != KHEAP_SHARED_VERSION || hdr->abi != abi_signature())
		return -EPROTO;
	if (hdr->check != header_check(hdr) || (state != SHARED_READY && state != SHARED_BROKEN))
		return -EINVAL;
	if (state == SHARED_BROKEN)
		return -ENOTRECOVERABLE;
	if (hdr->region_bytes > bytes)
		return -ERANGE;
	if (!heap_fits(hdr, bytes))
		return -EINVAL;

	ctl = (struct k_heap_control *)((uint8_t *)mem + hdr->control_offset);
	h->heap.heap = (struct z_heap *)((uint8_t *)mem + hdr->z_offset);
	h->heap.init_mem = (uint8_t *)mem + hdr->heap_offset;
	h->heap.init_bytes = hdr->heap_bytes;
	h->control = ctl;
	h->cache_percent = caches_enabled(ctl) ? hdr->cache_percent : 0;
	if (!lock_region(ctl, false)) {
		memset(h, 0, sizeof(*h));
		return -ENOTRECOVERABLE;
	}
	rc = join(h, ctl, mem);
	kheap_shared_unlock(ctl);
	if (rc != 0)
		memset(h, 0, sizeof(*h));
	return rc;
}

/* Quiesced: refuses while a thread of this process waits; else leaves. */
static bool leave_process_table(struct k_heap *h, struct k_heap_control *ctl)
{
	struct shared_process *p = &header_of(ctl)->processes[tag_entry(h->owner_tag)];

	if (kheap_load_uint(&p->waiting) != 0)
		return true;
	p->attached = 0;
	return false;
}

int k_heap_detach(struct k_heap *h)
{
	int rc;

	if (h == NULL || h->shared_region == NULL)
		return -EINVAL;
	rc = kheap_close_handle(h, leave_process_table);
	if (rc == 0) {
		forget_handle(h);
		h->shared_region = NULL;
		h->owner_tag = 0;
	}
	return rc;
}

uint32_t k_heap_owner_tag(struct k_heap *h)
{
	return h == NULL ? 0 : h->owner_tag;
}

/* ---- owners of blocks, and reclaiming them -------------------------- */

struct owner_query {
	void *mem;
	uint32_t tag;
};

static int find_block_owner(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct owner_query *query = arg;
	struct z_heap *z = control_heap(ctl);
	const char *detail;
	chunkid_t c;

	(void)h;
	if (z_heap_check_block(z, query->mem, &c, &detail) == 0)
		query->tag = z_heap_trailer_tag(z, c);
	return 0;
}

uint32_t k_heap_block_owner(struct k_heap *h, void *mem)
{
	struct owner_query query = {mem, 0};

	if (h == NULL || h->shared_region == NULL || mem == NULL)
		return 0;
	kheap_with_quiesced(h, find_block_owner, &query);
	return query.tag;
}

struct reclaim_request {
	uint32_t tags[KHEAP_SHARED_MAX_PROCESSES];
	uint32_t tag_count;
	bool find_dead;
	struct k_heap_reclaimed result;
};

static bool wanted(const struct reclaim_request *req, uint32_t tag)
{
	for (uint32_t i = 0; i < req->tag_count; i++)
		if (req->tags[i] == tag)
			return true;
	return false;
}

/* Quiesced: detaches dead processes and adds their tags to the request. */
static void collect_dead(struct k_heap_control *ctl, struct reclaim_request *req)
{
	struct shared_header *hdr = header_of(ctl);

	for (uint32_t i = 0; i < KHEAP_SHARED_MAX_PROCESSES; i++) {
		struct shared_process *p = &hdr->processes[i];
		unsigned int waiting;

		if (!p->attached || entry_alive(p))
			continue;
		/* Its threads that died inside a slow path still count. */
		waiting = kheap_load_uint(&p->waiting);
		while (waiting-- > 0)
			kheap_dec_uint(&ctl->waiter_count);
		kheap_store_release_uint(&p->waiting, 0);
		p->attached = 0;
		req->tags[req->tag_count++] = make_tag(i, p->generation);
		req->result.processes++;
	}
}

static bool owned_by_request(struct z_heap *z, chunkid_t c, void *arg)
{
	return c != z->owner_control && !chunk_cached(z, c) &&
	       wanted(arg, z_heap_trailer_tag(z, c));
}

static int reclaim_quiesced(struct k_heap *h, struct k_heap_control *ctl, void *arg)
{
	struct reclaim_request *req = arg;
	struct shared_header *hdr = header_of(ctl);
	struct z_heap *z = control_heap(ctl);
	uintptr_t base = (uintptr_t)hdr;
	uint32_t *wake[KHEAP_WAKE_BATCH];
	size_t served;

	(void)h;
	if (req->find_dead)
		collect_dead(ctl, req);
	if (req->tag_count == 0)
		return 0;
	/* Waits first: a served but uncollected record's block is tagged with
	 * its owner and is freed by the walk below.
	 */
	for (uint32_t i = 0; i < SHARED_WAITERS; i++) {
		struct kheap_waiter *w = &hdr->waiters[i];

		if (!w->in_use || !wanted(req, w->owner_tag))
			continue;
		if (kheap_load_acquire_32(&w->state) != KHEAP_WAITER_SERVED)
			kheap_waitq_remove(&ctl->waitq, base, w);
		w->in_use = 0;
		req->result.waiters++;
	}
	req->result.blocks += z_heap_free_where(z, owned_by_request, req, &req->result.bytes);
	served = kheap_after_release(ctl, wake);
	kheap_note_pressure(ctl);
	kheap_wake_served(ctl, wake, served);
	return 0;
}

static int run_reclaim(struct k_heap *h, struct reclaim_request *req, struct k_heap_reclaimed *out)
{
	int rc;

	if (h == NULL || h->shared_region == NULL)
		return -EINVAL;
	rc = kheap_with_quiesced(h, reclaim_quiesced, req);
	if (rc == 0 && out != NULL)
		*out = req->result;
	return rc;
}

int k_heap_reclaim_owner(struct k_heap *h, uint32_t tag, struct k_heap_reclaimed *out)
{
	struct reclaim_request req;

	if (tag == 0)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.tags[0] = tag;
	req.tag_count = 1;
	return run_reclaim(h, &req, out);
}

int k_heap_reclaim_dead(struct k_heap *h, struct k_heap_reclaimed *out)
{
	struct reclaim_request req;

	memset(&req, 0, sizeof(req));
	req.find_dead = true;
	return run_reclaim(h, &req, out);
}

void kheap_shared_note_recovery(struct k_heap_control *ctl)
{
	header_of(ctl)->recoveries++;
}

/* Quiesced: heap and cache locks taken over from dead holders. */
uint64_t kheap_shared_recoveries(struct k_heap_control *ctl)
{
	return header_of(ctl)->recoveries;
}

/* Quiesced, for validate: the region's own bookkeeping. */
bool kheap_shared_check(struct k_heap_control *ctl, const char **why)
{
	if (!wait_queue_intact(ctl)) {
		*why = "a shared heap's wait queue or waiter records are damaged";
		return false;
	}
	return true;
}
