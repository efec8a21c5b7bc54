/*
 * heapstress runner: one run from heap setup to exit status.
 *
 * Phases, in order, each finished before the next starts:
 * 1. setup: output files opened, heap formatted, threads created and pinned,
 *    all waiting at the gate (a failure here exits 2 and no thread runs);
 * 2. drive: the main thread opens the gate, then samples, prints progress
 *    and validates the heap on its schedule until the time is up, every
 *    worker spent its quota, or a failure was recorded;
 * 3. park: `stop` is set; every thread finishes its current call and parks.
 *    With all threads parked the main thread owns every live set, walks the
 *    heap for the map and checks the walk against what the threads hold
 *    (checks.c). A
 *    thread that does not park within HS_WATCHDOG_NS is stuck inside the
 *    heap: that is reported and the process exits 1 at once;
 * 4. cleanup: threads are released, free everything they hold and exit;
 * 5. checks (checks.c) and reports, with every thread joined.
 *
 * Observing the heap (stats, validation) quiesces it, and while it is
 * quiesced the per-CPU fast paths fall back to the heap lock: an observer
 * changes where blocks land. When the run has a single thread, the main
 * thread therefore hands each observation to that thread, which makes it
 * between bursts (hs_observe); nothing then races with the only mutator and
 * a seeded op-count run replays exactly. With more threads the observer
 * runs concurrently on purpose: validating a heap in use is part of the test.
 *
 * The fault handler is process-wide and has no argument, so the run it
 * reports to is published in hs_fault_sink for the duration of the run.
 *
 * With --processes the heap lives in shared memory and the threads in
 * worker processes: procs.c formats the heap, forks and drives them, and
 * runs phases 2-4 from the parent; setup, the checks and the reports stay
 * here.
 */
#include "run.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kheap/kheap.h>

#include "failures.h"
#include "hist.h"
#include "procs.h"
#include "report.h"
#include "result.h"
#include "runner.h"
#include "svg.h"
#include "workloads.h"

#define HS_WATCHDOG_NS	 (60ull * HS_NS_PER_S)
#define HS_THREAD_STACK	 (256u * 1024u)
#define HS_FILL_PLAIN	 0.70
#define HS_FILL_STORM	 0.45
#define HS_TTY_REFRESH	 (HS_NS_PER_S / 4)
#define HS_PLAIN_REFRESH HS_NS_PER_S

static struct hs_runner *_Atomic hs_fault_sink;

/* Written before the run starts, so the crash handler only has to write(2) it. */
static char hs_crash_message[192];
static size_t hs_crash_length;

static void hs_on_crash(int sig)
{
	ssize_t written = write(STDERR_FILENO, hs_crash_message, hs_crash_length);

	(void)written;
	raise(sig);
}

/* A crash inside the heap still names the seed; the signal then takes its default course. */
static void hs_install_crash_handler(uint64_t seed)
{
	static const int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
	struct sigaction action;
	unsigned int i;
	int n;

	n = snprintf(hs_crash_message, sizeof(hs_crash_message),
		     "heapstress: FAIL: fatal signal in the run (seed %llu; rerun with --seed %llu "
		     "to replay)\n",
		     (unsigned long long)seed, (unsigned long long)seed);
	hs_crash_length = n > 0 ? (size_t)n : 0;
	memset(&action, 0, sizeof(action));
	action.sa_handler = hs_on_crash;
	action.sa_flags = (int)SA_RESETHAND;
	sigemptyset(&action.sa_mask);
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		sigaction(signals[i], &action, NULL);
	}
}

static void hs_on_fault(enum kheap_fault fault, const void *heap, const void *ptr,
			const char *detail)
{
	struct hs_runner *r = atomic_load(&hs_fault_sink);
	char where[64];

	if (r == NULL) {
		return;
	}
	if (ptr != NULL && (const unsigned char *)ptr >= r->region &&
	    (const unsigned char *)ptr < r->region + r->opt->heap_size) {
		snprintf(where, sizeof(where), "heap offset +0x%zx",
			 (size_t)((const unsigned char *)ptr - r->region));
	} else {
		snprintf(where, sizeof(where), "pointer %p", ptr);
	}
	atomic_fetch_add(&r->failures.faults, 1);
	hs_fail(&r->failures, true, "heap fault '%s' at %s (heap %p): %s", kheap_fault_name(fault),
		where, heap, detail != NULL ? detail : "");
}

/* Called once, on the first failure of any kind: wind the run down. */
static void hs_on_first_failure(void *arg)
{
	struct hs_runner *r = arg;

	atomic_store(&r->shared.stop, true);
	if (r->procs != NULL) {
		hs_procs_on_failure(r);
	}
	pthread_mutex_lock(&r->lock);
	r->stop_requested = true;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

void hs_report_faults_to(struct hs_runner *r)
{
	atomic_store(&hs_fault_sink, r);
}

static struct timespec hs_abs_time(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / HS_NS_PER_S);
	ts.tv_nsec = (long)(ns % HS_NS_PER_S);
	return ts;
}

static void hs_observe_now(struct hs_runner *r, unsigned int what)
{
	if ((what & HS_OBSERVE_VALIDATE) && !hs_heap_suspect(&r->failures)) {
		hs_validate(r, "while the run was going");
	}
	if (what & HS_OBSERVE_SAMPLE) {
		memset(&r->observed_stats, 0, sizeof(r->observed_stats));
		k_heap_runtime_stats_get(&r->heap, &r->observed_stats);
		r->observed_waiters = k_heap_waiter_count(&r->heap);
	}
}

/* Runs on the worker's thread, between bursts. */
static void hs_observe_from_worker(struct hs_shared *shared)
{
	struct hs_runner *r =
	    (struct hs_runner *)(void *)((char *)shared - offsetof(struct hs_runner, shared));
	unsigned int what;

	pthread_mutex_lock(&r->lock);
	what = r->observe_request;
	r->observe_request = 0;
	atomic_store_explicit(&shared->observe_pending, false, memory_order_relaxed);
	pthread_mutex_unlock(&r->lock);
	if (what == 0) {
		return;
	}
	hs_observe_now(r, what);
	pthread_mutex_lock(&r->lock);
	r->observe_done = true;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

/*
 * Makes an observation, through the worker when delegating. A worker that
 * has already finished no longer touches the heap, so then the main thread
 * observes directly.
 */
void hs_observe(struct hs_runner *r, unsigned int what)
{
	bool delegated = false;

	if (r->delegate) {
		pthread_mutex_lock(&r->lock);
		r->observe_request = what;
		r->observe_done = false;
		atomic_store_explicit(&r->shared.observe_pending, true, memory_order_release);
		while (!r->observe_done && r->workers_finished < r->opt->threads) {
			pthread_cond_wait(&r->wake, &r->lock);
		}
		delegated = r->observe_done;
		r->observe_request = 0;
		atomic_store_explicit(&r->shared.observe_pending, false, memory_order_relaxed);
		pthread_mutex_unlock(&r->lock);
	}
	if (!delegated) {
		hs_observe_now(r, what);
	}
}

static void *hs_thread_main(void *arg)
{
	struct hs_thread *t = arg;
	struct hs_runner *r = t->runner;
	struct hs_worker *w = &t->worker;
	enum hs_gate_state gate;
	cpu_set_t set;

	if (t->pin_cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(t->pin_cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == 0) {
			w->cpu = t->pin_cpu;
		}
	}
	pthread_mutex_lock(&r->lock);
	while (r->gate == HS_GATE_CLOSED) {
		pthread_cond_wait(&r->go, &r->lock);
	}
	gate = r->gate;
	pthread_mutex_unlock(&r->lock);
	if (gate == HS_GATE_ABORT) {
		return NULL;
	}
	hs_worker_run(w);
	pthread_mutex_lock(&r->lock);
	if (!w->storm_only) {
		r->workers_finished++;
	}
	r->parked++;
	pthread_cond_broadcast(&r->wake);
	while (!r->released) {
		pthread_cond_wait(&r->go, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	hs_worker_cleanup(w);
	return NULL;
}

static int hs_open_output(struct hs_runner *r, const char *path, const char *what, FILE **file)
{
	if (path == NULL) {
		return 0;
	}
	*file = fopen(path, "w");
	if (*file == NULL) {
		hs_usage_error(r->err, "%s: cannot create '%s': %s", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

static uint64_t hs_pick_seed(const struct hs_options *opt)
{
	if (opt->seed_given) {
		return opt->seed;
	}
	return hs_mix64(hs_now_ns() ^ ((uint64_t)getpid() << 32)) & ((UINT64_C(1) << 53) - 1);
}

/* With storm threads to carry the storm, workers keep to the other workloads. */
static bool hs_workers_storm(const struct hs_options *opt)
{
	return (opt->workloads & (1u << HS_WL_STORM)) &&
	       (opt->storm_threads == 0 || opt->workloads == 1u << HS_WL_STORM);
}

/* Maps private memory for the heap and formats it. 0, or -1 after a usage error. */
static int hs_format_private_heap(struct hs_runner *r, const struct k_heap_config *config)
{
	const struct hs_options *opt = r->opt;
	char size_text[32];
	int rc;

	hs_format_bytes(opt->heap_size, size_text, sizeof(size_text));
	r->region = mmap(NULL, opt->heap_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->region == MAP_FAILED) {
		r->region = NULL;
		hs_usage_error(r->err, "--heap-size: cannot map %s: %s", size_text,
			       strerror(errno));
		return -1;
	}
	rc = k_heap_init_config(&r->heap, r->region, opt->heap_size, config);
	r->heap_live = rc == 0;
	if (rc != 0) {
		hs_usage_error(r->err, "--heap-size: k_heap_init refused %s (%s)", size_text,
			       rc == -E2BIG ? "larger than a heap can be"
					    : "too small for the heap's own metadata");
		return -1;
	}
	return 0;
}

/*
 * Formats the heap and sizes each worker's share of it. With several
 * processes every one of them runs opt->threads workers and
 * opt->storm_threads storm threads, and the shares are of the whole heap.
 */
static int hs_setup_heap(struct hs_runner *r)
{
	const struct hs_options *opt = r->opt;
	struct k_heap_config config = {.cache_percent =
					   opt->caches ? KHEAP_DEFAULT_CACHE_PERCENT : 0};
	struct sys_memory_stats stats;
	char size_text[32], need_text[32];
	bool storm = opt->workloads & (1u << HS_WL_STORM);
	double fill = storm ? HS_FILL_STORM : HS_FILL_PLAIN;
	uint64_t need_per_worker = 4 * ((uint64_t)opt->size_max + 16);
	unsigned int workers = opt->threads * opt->processes;
	unsigned int participants;
	int rc;

	if (opt->processes > 1) {
		rc = hs_procs_format_heap(r, &config);
	} else {
		rc = hs_format_private_heap(r, &config);
	}
	if (rc != 0) {
		return -1;
	}
	if (k_heap_runtime_stats_get(&r->heap, &stats) != 0) {
		hs_usage_error(r->err, "k_heap_runtime_stats_get failed on a fresh heap");
		return -1;
	}
	if ((double)stats.free_bytes * fill < (double)need_per_worker * workers) {
		hs_format_bytes(opt->heap_size, size_text, sizeof(size_text));
		hs_format_bytes((uint64_t)((double)need_per_worker * workers / fill) +
				    (opt->heap_size - stats.free_bytes),
				need_text, sizeof(need_text));
		hs_usage_error(r->err,
			       "--heap-size %s is too small for %u threads with requests up to %zu "
			       "bytes (need at least %s)",
			       size_text, workers, opt->size_max, need_text);
		return -1;
	}
	r->result.heap_bytes = opt->heap_size;
	r->result.initial_free = stats.free_bytes;
	r->result.initial_allocated = stats.allocated_bytes;
	r->shared.worker_budget = (size_t)((double)stats.free_bytes * fill / workers);
	participants =
	    ((unsigned int)opt->storm_threads + (hs_workers_storm(opt) ? opt->threads : 0)) *
	    opt->processes;
	if (participants > 0) {
		size_t block = (size_t)((double)stats.free_bytes * 1.2 / participants);
		size_t floor = opt->size_min > 256 ? opt->size_min : 256;

		block = block < floor ? floor : block;
		r->shared.storm_block = block > stats.free_bytes / 4 ? stats.free_bytes / 4 : block;
	}
	return 0;
}

int hs_setup_threads(struct hs_runner *r, struct hs_thread *threads)
{
	const struct hs_options *opt = r->opt;
	struct hs_shared *s = &r->shared;
	unsigned int per_process = opt->threads + (unsigned int)opt->storm_threads;
	uint64_t workers = (uint64_t)opt->threads * opt->processes;
	unsigned int i, wl, index;
	uint64_t quota, worker;

	s->heap = &r->heap;
	s->region = r->region;
	s->region_bytes = opt->heap_size;
	s->opt = opt;
	s->seed = r->result.seed;
	s->failures = &r->failures;
	s->workers = opt->threads;
	atomic_init(&s->stop, false);
	atomic_init(&s->observe_pending, false);
	r->delegate = opt->processes == 1 && opt->threads + (unsigned int)opt->storm_threads == 1;
	s->observe = r->delegate ? hs_observe_from_worker : NULL;
	for (wl = 0; wl < HS_WL_COUNT; wl++) {
		if ((opt->workloads & (1u << wl)) && (wl != HS_WL_STORM || hs_workers_storm(opt))) {
			s->worker_mix[s->worker_mix_count++] = (enum hs_workload)wl;
		}
	}
	r->nthreads = per_process;
	r->threads_borrowed = threads != NULL;
	r->threads = threads != NULL ? threads : calloc(r->nthreads, sizeof(*r->threads));
	if (r->threads == NULL) {
		hs_usage_error(r->err, "out of memory for %u threads", r->nthreads);
		return -1;
	}
	for (i = 0; i < r->nthreads; i++) {
		bool storm_only = i >= opt->threads;

		index = r->proc_index * per_process + i;
		worker = (uint64_t)r->proc_index * opt->threads + i;
		quota = 0;
		if (!storm_only && opt->ops != 0) {
			quota = opt->ops / workers + (worker < opt->ops % workers ? 1 : 0);
		}
		r->threads[i].runner = r;
		r->threads[i].pin_cpu = opt->cpus[index % opt->ncpus];
		if (hs_worker_init(&r->threads[i].worker, s, index, storm_only, quota) != 0) {
			hs_usage_error(r->err, "out of memory for thread %u", index);
			return -1;
		}
		r->created = i + 1;
	}
	for (i = 0; i < opt->threads; i++) {
		r->threads[i].worker.outbox = r->threads[(i + 1) % opt->threads].worker.inbox;
	}
	return 0;
}

/* Creates every thread; they wait at the gate. On failure the created ones are told to leave. */
int hs_start_threads(struct hs_runner *r)
{
	pthread_attr_t attr;
	unsigned int i, started;
	int rc = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, HS_THREAD_STACK);
	for (started = 0; started < r->nthreads; started++) {
		rc = pthread_create(&r->threads[started].tid, &attr, hs_thread_main,
				    &r->threads[started]);
		if (rc != 0) {
			break;
		}
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&r->lock);
	r->gate = rc == 0 ? HS_GATE_OPEN : HS_GATE_ABORT;
	r->start_ns = hs_now_ns();
	r->shared.inject_at_ns = r->start_ns + (uint64_t)(r->opt->duration_s * 1e9 / 3);
	pthread_cond_broadcast(&r->go);
	pthread_mutex_unlock(&r->lock);
	if (rc != 0) {
		for (i = 0; i < started; i++) {
			pthread_join(r->threads[i].tid, NULL);
		}
		hs_usage_error(r->err, "cannot create thread %u of %u: %s", started + 1,
			       r->nthreads, strerror(rc));
		return -1;
	}
	return 0;
}

static void hs_push_sample(struct hs_runner *r, const struct hs_sample *sample)
{
	struct hs_result *res = &r->result;
	struct hs_sample *grown;
	size_t cap;

	if (res->nsamples == res->samples_cap) {
		cap = res->samples_cap ? res->samples_cap * 2 : 256;
		grown = realloc(res->samples, cap * sizeof(*grown));
		if (grown == NULL) {
			return;
		}
		res->samples = grown;
		res->samples_cap = cap;
	}
	res->samples[res->nsamples++] = *sample;
}

static void hs_format_rate(double rate, char *buf, size_t len)
{
	if (rate >= 1e6) {
		snprintf(buf, len, "%.2fM", rate / 1e6);
	} else if (rate >= 1e3) {
		snprintf(buf, len, "%.1fK", rate / 1e3);
	} else {
		snprintf(buf, len, "%.0f", rate);
	}
}

static void hs_progress(struct hs_runner *r, const struct hs_sample *s, uint64_t now)
{
	const struct hs_options *opt = r->opt;
	double heap = (double)r->result.heap_bytes;
	char rate[32], span[48];

	if (opt->quiet) {
		return;
	}
	if (now - r->last_progress_ns < (r->tty ? HS_TTY_REFRESH : HS_PLAIN_REFRESH)) {
		return;
	}
	r->last_progress_ns = now;
	hs_format_rate(s->ops_per_s, rate, sizeof(rate));
	if (opt->ops != 0) {
		snprintf(span, sizeof(span), "%6.1fs, %llu/%llu ops", s->t,
			 (unsigned long long)s->worker_ops, (unsigned long long)opt->ops);
	} else {
		snprintf(span, sizeof(span), "%6.1fs/%.1fs", s->t, opt->duration_s);
	}
	fprintf(r->err, "%s[%s] %s ops/s, heap %.1f%% used, %.1f%% cached, %u waiters, %s%s",
		r->tty ? "\r" : "", span, rate, 100.0 * (double)s->allocated_bytes / heap,
		100.0 * (double)s->cached_bytes / heap, s->waiters,
		hs_failed(&r->failures) ? "FAILING" : "ok", r->tty ? "\033[K" : "\n");
	fflush(r->err);
}

void hs_record_sample(struct hs_runner *r, uint64_t now, bool show)
{
	struct hs_sample s;
	double dt;
	unsigned int i;

	memset(&s, 0, sizeof(s));
	hs_hist_snapshot_clear(&r->cur_alloc);
	hs_hist_snapshot_clear(&r->cur_free);
	for (i = 0; i < r->nthreads; i++) {
		struct hs_worker *w = &r->threads[i].worker;
		uint64_t ops = atomic_load_explicit(&w->ops_done, memory_order_relaxed);

		s.ops += ops;
		s.worker_ops += w->storm_only ? 0 : ops;
		hs_hist_snapshot_add(&r->cur_alloc, &w->alloc_ns);
		hs_hist_snapshot_add(&r->cur_free, &w->free_ns);
	}
	s.t = (double)(now - r->start_ns) / 1e9;
	dt = (double)(now - r->prev_sample_ns) / 1e9;
	s.ops_per_s = dt > 0 ? (double)(s.ops - r->prev_ops) / dt : 0;
	s.allocated_bytes = r->observed_stats.allocated_bytes;
	s.cached_bytes = r->observed_stats.cached_bytes;
	s.waiters = r->observed_waiters;
	hs_hist_snapshot_delta(&r->delta, &r->cur_alloc, &r->prev_alloc);
	s.alloc_p50_ns = hs_hist_percentile(&r->delta, 0.50);
	s.alloc_p99_ns = hs_hist_percentile(&r->delta, 0.99);
	hs_hist_snapshot_delta(&r->delta, &r->cur_free, &r->prev_free);
	s.free_p99_ns = hs_hist_percentile(&r->delta, 0.99);
	r->prev_alloc = r->cur_alloc;
	r->prev_free = r->cur_free;
	r->prev_ops = s.ops;
	r->prev_sample_ns = now;
	hs_push_sample(r, &s);
	if (show) {
		hs_progress(r, &s, now);
	}
}

void hs_clock_start(struct hs_runner *r, struct hs_clock *clock)
{
	const struct hs_options *opt = r->opt;
	uint64_t now = r->start_ns;

	clock->interval = HS_NS_PER_S / 10;
	if (opt->ops == 0 && opt->duration_s > 30) {
		clock->interval = (uint64_t)(opt->duration_s * 1e9 / 300);
	}
	clock->vinterval = (uint64_t)(opt->validate_interval_s * 1e9);
	r->prev_sample_ns = now;
	clock->next_sample = now + clock->interval;
	clock->next_validate = clock->vinterval ? now + clock->vinterval : UINT64_MAX;
	clock->deadline = opt->ops == 0 ? now + (uint64_t)(opt->duration_s * 1e9) : UINT64_MAX;
}

uint64_t hs_clock_next(const struct hs_clock *clock)
{
	uint64_t m =
	    clock->next_sample < clock->next_validate ? clock->next_sample : clock->next_validate;

	return m < clock->deadline ? m : clock->deadline;
}

void hs_clock_tick(struct hs_runner *r, struct hs_clock *clock, uint64_t now)
{
	unsigned int what = (now >= clock->next_sample ? HS_OBSERVE_SAMPLE : 0) |
			    (now >= clock->next_validate ? HS_OBSERVE_VALIDATE : 0);

	if (what == 0) {
		return;
	}
	hs_observe(r, what);
	if (what & HS_OBSERVE_SAMPLE) {
		hs_record_sample(r, now, true);
		clock->next_sample = clock->next_sample + clock->interval > now
					 ? clock->next_sample + clock->interval
					 : now + clock->interval;
	}
	if (what & HS_OBSERVE_VALIDATE) {
		clock->next_validate = now + clock->vinterval;
	}
}

/* Phase 2: sample, report progress and validate until the run should stop. */
static void hs_drive(struct hs_runner *r)
{
	const struct hs_options *opt = r->opt;
	struct hs_clock clock;
	uint64_t now, wake;
	struct timespec until;
	bool finished;

	hs_clock_start(r, &clock);
	for (;;) {
		wake = hs_clock_next(&clock);
		until = hs_abs_time(wake);
		pthread_mutex_lock(&r->lock);
		while (!r->stop_requested && r->workers_finished < opt->threads &&
		       hs_now_ns() < wake) {
			pthread_cond_timedwait(&r->wake, &r->lock, &until);
		}
		finished = r->stop_requested || r->workers_finished == opt->threads;
		pthread_mutex_unlock(&r->lock);
		now = hs_now_ns();
		if (finished || now >= clock.deadline) {
			break;
		}
		hs_clock_tick(r, &clock, now);
	}
	atomic_store(&r->shared.stop, true);
	r->end_ns = hs_now_ns();
	if (r->tty && !opt->quiet) {
		fputs("\r\033[K", r->err);
		fflush(r->err);
	}
}

void hs_park(struct hs_runner *r)
{
	struct timespec until = hs_abs_time(hs_now_ns() + HS_WATCHDOG_NS);
	unsigned int parked;

	pthread_mutex_lock(&r->lock);
	while (r->parked < r->nthreads) {
		if (pthread_cond_timedwait(&r->wake, &r->lock, &until) == ETIMEDOUT) {
			break;
		}
	}
	parked = r->parked;
	pthread_mutex_unlock(&r->lock);
	if (parked < r->nthreads) {
		fprintf(r->err,
			"heapstress: FAIL: %u of %u threads are still inside the heap %llu s after "
			"the run stopped (a lost wake-up or a deadlock); seed %llu\n",
			r->nthreads - parked, r->nthreads,
			(unsigned long long)(HS_WATCHDOG_NS / HS_NS_PER_S),
			(unsigned long long)r->result.seed);
		fflush(NULL);
		_exit(HS_EXIT_FAIL);
	}
	hs_observe_now(r, HS_OBSERVE_SAMPLE);
	hs_record_sample(r, hs_now_ns(), false);
}

void hs_release_and_join(struct hs_runner *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	r->released = true;
	pthread_cond_broadcast(&r->go);
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < r->nthreads; i++) {
		pthread_join(r->threads[i].tid, NULL);
	}
}

/*
 * Tears down a heap the run did not: after a setup error or a failed run.
 * A corrupt heap is not touched at all; a heap that cannot be torn down
 * keeps its region mapped, since the library may still refer to it.
 */
static void hs_retire_heap(struct hs_runner *r)
{
	if (r->procs != NULL) {
		hs_procs_free(r);
		return;
	}
	if (r->heap_live && !hs_heap_suspect(&r->failures) && k_heap_deinit(&r->heap) == 0) {
		r->heap_live = false;
	}
	if (r->region != NULL && !r->heap_live) {
		munmap(r->region, r->opt->heap_size);
	}
	r->region = NULL;
}

/* The heap decides in the end: a small heap gets no caches. */
static const char *hs_caches_text(const struct hs_runner *r)
{
	if (!r->opt->caches) {
		return "off";
	}
	if (r->heap.cache_percent == 0) {
		return "off (the heap is too small for them)";
	}
	return "on";
}

static void hs_print_header(struct hs_runner *r)
{
	const struct hs_options *opt = r->opt;
	char cpus[256], heap[32], free_text[32], workloads[128] = "";
	unsigned int wl;

	if (opt->quiet) {
		return;
	}
	hs_format_cpu_list(opt->cpus, opt->ncpus, cpus, sizeof(cpus));
	hs_format_bytes(r->result.heap_bytes, heap, sizeof(heap));
	hs_format_bytes(r->result.initial_free, free_text, sizeof(free_text));
	for (wl = 0; wl < HS_WL_COUNT; wl++) {
		if (opt->workloads & (1u << wl)) {
			if (workloads[0] != '\0') {
				strcat(workloads, ",");
			}
			strcat(workloads, hs_workload_name((enum hs_workload)wl));
		}
	}
	fprintf(r->out,
		"heapstress: seed %llu (rerun with --seed %llu and the same options to "
		"replay)\n",
		(unsigned long long)r->result.seed, (unsigned long long)r->result.seed);
	if (opt->processes > 1) {
		fprintf(r->out,
			"  %u worker processes on one heap in shared memory (a memfd), each "
			"mapping it at its own address%s\n",
			opt->processes,
			!opt->kill_one ? ""
			: opt->kill_parked
			    ? "; the last one is SIGKILLed halfway, parked (--kill-one=parked)"
			    : "; the last one is SIGKILLed halfway (--kill-one)");
	}
	fprintf(r->out,
		"  %u worker%s + %d storm thread%s%s on CPUs %s; heap %s (%s free), caches %s\n",
		opt->threads, opt->threads == 1 ? "" : "s", opt->storm_threads,
		opt->storm_threads == 1 ? "" : "s", opt->processes > 1 ? " in each" : "", cpus,
		heap, free_text, hs_caches_text(r));
	fprintf(r->out, "  workloads %s; sizes %zu-%zu (%s); ", workloads, opt->size_min,
		opt->size_max, hs_size_dist_name(opt->size_dist));
	if (opt->ops != 0) {
		fprintf(r->out, "%llu ops", (unsigned long long)opt->ops);
	} else {
		fprintf(r->out, "%.1f s", opt->duration_s);
	}
	if (opt->validate_interval_s > 0) {
		fprintf(r->out, ", validating every %.2f s\n", opt->validate_interval_s);
	} else {
		fprintf(r->out, ", validating at the end\n");
	}
	fflush(r->out);
}

static int hs_write_outputs(struct hs_runner *r)
{
	int status = 0;

	if (r->json != NULL) {
		if (hs_report_json(r->json, &r->result) != 0 || fclose(r->json) != 0) {
			fprintf(r->err, "heapstress: error writing %s\n", r->opt->json_path);
			status = -1;
		}
		r->json = NULL;
	}
	if (r->svg != NULL) {
		if (hs_svg_write(r->svg, &r->result) != 0 || fclose(r->svg) != 0) {
			fprintf(r->err, "heapstress: error writing %s\n", r->opt->svg_path);
			status = -1;
		}
		r->svg = NULL;
	}
	return status;
}

static void hs_print_verdict(struct hs_runner *r)
{
	struct hs_result *res = &r->result;
	size_t i;

	pthread_mutex_lock(&r->failures.lock);
	for (i = 0; i < r->failures.count; i++) {
		fprintf(r->err, "heapstress: FAIL: %s\n", r->failures.messages[i]);
	}
	if (r->failures.dropped != 0) {
		fprintf(r->err, "heapstress: FAIL: ... and %llu more\n",
			(unsigned long long)r->failures.dropped);
	}
	pthread_mutex_unlock(&r->failures.lock);
	fprintf(r->out, "heapstress: %s (seed %llu, %llu ops", res->passed ? "PASS" : "FAIL",
		(unsigned long long)res->seed, (unsigned long long)res->total.ops);
	if (res->storm_threads != 0) {
		fprintf(r->out, ", %llu of them by storm threads",
			(unsigned long long)res->storm_counts.ops);
	}
	fprintf(r->out, " in %.2f s)\n", res->elapsed_s);
}

static void hs_runner_free(struct hs_runner *r)
{
	unsigned int i;

	for (i = 0; i < r->created; i++) {
		hs_worker_destroy(&r->threads[i].worker);
	}
	if (!r->threads_borrowed) {
		free(r->threads);
	}
	free(r->result.samples);
	free(r->result.cpus);
	free(r->result.map.chunks);
	hs_retire_heap(r);
	if (r->json != NULL) {
		fclose(r->json);
	}
	if (r->svg != NULL) {
		fclose(r->svg);
	}
	pthread_cond_destroy(&r->go);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	hs_failures_destroy(&r->failures);
	free(r);
}

struct hs_runner *hs_runner_new(const struct hs_options *opt, FILE *out, FILE *err)
{
	struct hs_runner *r = calloc(1, sizeof(*r));
	pthread_condattr_t attr;

	if (r == NULL) {
		return NULL;
	}
	r->opt = opt;
	r->out = out;
	r->err = err;
	r->tty = isatty(fileno(err));
	r->gate = HS_GATE_CLOSED;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&r->go, NULL);
	hs_failures_init(&r->failures, hs_on_first_failure, r);
	r->result.opt = opt;
	r->result.failures = &r->failures;
	r->result.seed = hs_pick_seed(opt);
	return r;
}

/* Phases 2-4 with this process's threads. 0, or -1 when they could not start. */
static int hs_run_threads(struct hs_runner *r)
{
	if (hs_start_threads(r) != 0) {
		return -1;
	}
	hs_failures_start_clock(&r->failures, r->start_ns);
	hs_drive(r);
	hs_park(r);
	hs_inspect(r);
	hs_release_and_join(r);
	return 0;
}

int hs_run(const struct hs_options *opt, FILE *out, FILE *err)
{
	struct hs_runner *r = hs_runner_new(opt, out, err);
	kheap_fault_handler_t previous;
	int status = HS_EXIT_USAGE;
	bool processes = opt->processes > 1;

	if (r == NULL) {
		fprintf(err, "heapstress: out of memory\n");
		return HS_EXIT_USAGE;
	}
	if (hs_open_output(r, opt->json_path, "--json", &r->json) != 0 ||
	    hs_open_output(r, opt->svg_path, "--svg", &r->svg) != 0 || hs_setup_heap(r) != 0 ||
	    (processes ? hs_procs_setup(r) : hs_setup_threads(r, NULL)) != 0) {
		hs_runner_free(r);
		return HS_EXIT_USAGE;
	}
	hs_print_header(r);
	hs_install_crash_handler(r->result.seed);
	hs_report_faults_to(r);
	previous = kheap_set_fault_handler(hs_on_fault);
	if ((processes ? hs_procs_drive(r) : hs_run_threads(r)) == 0) {
		if (hs_collect(r) != 0) {
			hs_fail(&r->failures, false, "out of memory while collecting results");
		}
		hs_final_checks(r);
		r->result.passed = !hs_failed(&r->failures);
		status = r->result.passed ? HS_EXIT_PASS : HS_EXIT_FAIL;
		if (!opt->quiet && r->result.cpus != NULL) {
			hs_report_table(out, &r->result);
		}
		hs_print_verdict(r);
		if (hs_write_outputs(r) != 0 && status == HS_EXIT_PASS) {
			status = HS_EXIT_USAGE;
		}
	}
	hs_retire_heap(r);
	kheap_set_fault_handler(previous);
	atomic_store(&hs_fault_sink, NULL);
	hs_runner_free(r);
	return status;
}

int hs_main(int argc, char **argv)
{
	struct hs_options opt;

	switch (hs_options_parse(&opt, argc, argv, stdout, stderr)) {
	case HS_PARSE_HELP:
		return HS_EXIT_PASS;
	case HS_PARSE_ERROR:
		return HS_EXIT_USAGE;
	case HS_PARSE_RUN:
		break;
	}
	return hs_run(&opt, stdout, stderr);
}
