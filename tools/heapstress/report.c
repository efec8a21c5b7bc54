/*
 * heapstress reports: table and JSON.
 *
 * The JSON writer keeps one flag per nesting level saying whether the
 * current container already has a member, so commas are always right; it
 * escapes every string and writes non-finite numbers as null, so the output
 * is valid JSON whatever the run produced.
 */
#include "report.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define HS_JSON_DEPTH 16

struct hs_json {
	FILE *f;
	unsigned int depth;
	bool has_member[HS_JSON_DEPTH];
};

void hs_format_ns(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000) {
		snprintf(buf, len, "%llu ns", (unsigned long long)ns);
	} else if (ns < 1000000) {
		snprintf(buf, len, "%.2f us", (double)ns / 1e3);
	} else if (ns < 1000000000) {
		snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
	} else {
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	}
}

static double hs_ratio(double part, double whole)
{
	return whole > 0 ? part / whole : 0.0;
}

static void hs_json_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* Starts a member (with `key`, inside an object) or an element (key NULL, inside an array). */
static void hs_json_member(struct hs_json *j, const char *key)
{
	if (j->has_member[j->depth]) {
		fputc(',', j->f);
	}
	j->has_member[j->depth] = true;
	fprintf(j->f, "\n%*s", (int)(2 * j->depth), "");
	if (key != NULL) {
		hs_json_string(j->f, key);
		fputs(": ", j->f);
	}
}

static void hs_json_open(struct hs_json *j, const char *key, char bracket)
{
	hs_json_member(j, key);
	fputc(bracket, j->f);
	if (j->depth + 1 < HS_JSON_DEPTH) {
		j->depth++;
	}
	j->has_member[j->depth] = false;
}

static void hs_json_close(struct hs_json *j, char bracket)
{
	bool had = j->has_member[j->depth];

	if (j->depth > 0) {
		j->depth--;
	}
	if (had) {
		fprintf(j->f, "\n%*s", (int)(2 * j->depth), "");
	}
	fputc(bracket, j->f);
}

static void hs_json_u64(struct hs_json *j, const char *key, uint64_t value)
{
	hs_json_member(j, key);
	fprintf(j->f, "%llu", (unsigned long long)value);
}

static void hs_json_i64(struct hs_json *j, const char *key, int64_t value)
{
	hs_json_member(j, key);
	fprintf(j->f, "%lld", (long long)value);
}

static void hs_json_double(struct hs_json *j, const char *key, double value)
{
	hs_json_member(j, key);
	if (isfinite(value)) {
		fprintf(j->f, "%.6g", value);
	} else {
		fputs("null", j->f);
	}
}

static void hs_json_bool(struct hs_json *j, const char *key, bool value)
{
	hs_json_member(j, key);
	fputs(value ? "true" : "false", j->f);
}

static void hs_json_str(struct hs_json *j, const char *key, const char *value)
{
	hs_json_member(j, key);
	hs_json_string(j->f, value);
}

static void hs_json_latency(struct hs_json *j, const char *key, const struct hs_hist_snapshot *h)
{
	hs_json_open(j, key, '{');
	hs_json_u64(j, "count", h->count);
	hs_json_u64(j, "p50", hs_hist_percentile(h, 0.50));
	hs_json_u64(j, "p99", hs_hist_percentile(h, 0.99));
	hs_json_u64(j, "p999", hs_hist_percentile(h, 0.999));
	hs_json_u64(j, "max", h->max);
	hs_json_double(j, "mean", hs_hist_mean(h));
	hs_json_close(j, '}');
}

static void hs_json_counts(struct hs_json *j, const char *key, const struct hs_counts *c)
{
	unsigned int wl;

	hs_json_open(j, key, '{');
	hs_json_u64(j, "total", c->ops);
	hs_json_u64(j, "allocs", c->allocs);
	hs_json_u64(j, "alloc_failures", c->alloc_failures);
	hs_json_u64(j, "aligned_allocs", c->aligned_allocs);
	hs_json_u64(j, "aligned_failures", c->aligned_failures);
	hs_json_u64(j, "blocking_allocs", c->blocking_allocs);
	hs_json_u64(j, "blocking_timeouts", c->blocking_timeouts);
	hs_json_u64(j, "reallocs", c->reallocs);
	hs_json_u64(j, "realloc_failures", c->realloc_failures);
	hs_json_u64(j, "realloc_moves", c->realloc_moves);
	hs_json_u64(j, "frees", c->frees);
	hs_json_u64(j, "cleanup_frees", c->cleanup_frees);
	hs_json_u64(j, "produced", c->produced);
	hs_json_u64(j, "consumed", c->consumed);
	hs_json_u64(j, "cross_process_sent", c->cross_sent);
	hs_json_u64(j, "cross_process_received", c->cross_received);
	hs_json_u64(j, "blocks_checked", c->blocks_checked);
	hs_json_u64(j, "bytes_checked", c->bytes_checked);
	hs_json_i64(j, "outstanding_blocks", hs_counts_outstanding(c));
	hs_json_open(j, "by_workload", '{');
	for (wl = 0; wl < HS_WL_COUNT; wl++) {
		hs_json_u64(j, hs_workload_name((enum hs_workload)wl), c->workload_ops[wl]);
	}
	hs_json_close(j, '}');
	hs_json_close(j, '}');
}

static void hs_json_config(struct hs_json *j, const struct hs_result *res)
{
	const struct hs_options *opt = res->opt;
	unsigned int i;

	hs_json_open(j, "config", '{');
	hs_json_u64(j, "threads", opt->threads);
	hs_json_u64(j, "unpinned_threads", res->unpinned);
	hs_json_u64(j, "storm_threads", (uint64_t)opt->storm_threads);
	hs_json_open(j, "cpus", '[');
	for (i = 0; i < opt->ncpus; i++) {
		hs_json_u64(j, NULL, (uint64_t)opt->cpus[i]);
	}
	hs_json_close(j, ']');
	hs_json_u64(j, "heap_size", opt->heap_size);
	hs_json_open(j, "workloads", '[');
	for (i = 0; i < HS_WL_COUNT; i++) {
		if (opt->workloads & (1u << i)) {
			hs_json_str(j, NULL, hs_workload_name((enum hs_workload)i));
		}
	}
	hs_json_close(j, ']');
	hs_json_str(j, "size_dist", hs_size_dist_name(opt->size_dist));
	hs_json_u64(j, "size_min", opt->size_min);
	hs_json_u64(j, "size_max", opt->size_max);
	hs_json_double(j, "duration_s", opt->ops ? 0.0 : opt->duration_s);
	hs_json_u64(j, "ops", opt->ops);
	hs_json_bool(j, "caches", opt->caches);
	hs_json_u64(j, "processes", opt->processes);
	hs_json_bool(j, "kill_one", opt->kill_one);
	hs_json_bool(j, "kill_parked", opt->kill_parked);
	hs_json_double(j, "validate_interval_s", opt->validate_interval_s);
	hs_json_u64(j, "worker_budget", res->worker_budget);
	hs_json_u64(j, "storm_block", res->storm_block);
	hs_json_close(j, '}');
}

static void hs_json_heap(struct hs_json *j, const struct hs_result *res)
{
	const struct hs_heap_map *map = &res->map;

	hs_json_open(j, "heap", '{');
	hs_json_u64(j, "size", res->heap_bytes);
	hs_json_u64(j, "initial_free", res->initial_free);
	hs_json_u64(j, "initial_allocated", res->initial_allocated);
	hs_json_u64(j, "peak_allocated", res->peak_allocated);
	hs_json_double(j, "peak_utilization",
		       hs_ratio((double)res->peak_allocated, (double)res->heap_bytes));
	hs_json_double(j, "mean_utilization", res->mean_used_fraction);
	if (res->have_stop_stats) {
		hs_json_open(j, "at_stop", '{');
		hs_json_u64(j, "allocated_bytes", res->at_stop.allocated_bytes);
		hs_json_u64(j, "cached_bytes", res->at_stop.cached_bytes);
		hs_json_u64(j, "free_bytes", res->at_stop.free_bytes);
		hs_json_close(j, '}');
	}
	hs_json_bool(j, "map_available", map->available);
	if (map->available) {
		hs_json_u64(j, "chunks", map->count);
		hs_json_u64(j, "used_chunks", map->state_chunks[K_HEAP_CHUNK_USED]);
		hs_json_u64(j, "free_chunks", map->state_chunks[K_HEAP_CHUNK_FREE]);
		hs_json_u64(j, "cached_chunks", map->state_chunks[K_HEAP_CHUNK_CACHED]);
		hs_json_u64(j, "metadata_bytes", map->state_bytes[K_HEAP_CHUNK_METADATA]);
		hs_json_u64(j, "largest_free", map->largest_free);
		hs_json_double(j, "fragmentation",
			       1.0 - hs_ratio((double)map->largest_free,
					      (double)map->state_bytes[K_HEAP_CHUNK_FREE]));
	}
	hs_json_close(j, '}');
}

static const char *hs_proc_end_name(enum hs_proc_end end)
{
	switch (end) {
	case HS_PROC_EXITED:
		return "exited";
	case HS_PROC_KILLED:
		return "killed";
	case HS_PROC_DIED:
		return "died";
	case HS_PROC_NOT_ENDED:
		break;
	}
	return "running";
}

/* Addresses as hex strings: a JSON number cannot hold every 64-bit value exactly. */
static void hs_json_address(struct hs_json *j, const char *key, uintptr_t address)
{
	char text[32];

	snprintf(text, sizeof(text), "%#llx", (unsigned long long)address);
	hs_json_str(j, key, text);
}

static void hs_json_reclaimed(struct hs_json *j, const char *key, const struct k_heap_reclaimed *r)
{
	hs_json_open(j, key, '{');
	hs_json_u64(j, "processes", r->processes);
	hs_json_u64(j, "blocks", r->blocks);
	hs_json_u64(j, "bytes", r->bytes);
	hs_json_u64(j, "waiters", r->waiters);
	hs_json_close(j, '}');
}

static void hs_json_relay(struct hs_json *j, const struct hs_procs_result *p)
{
	unsigned int k, served = 0;

	hs_json_open(j, "wakeup_relay", '{');
	hs_json_u64(j, "block_size", p->relay_block);
	hs_json_u64(j, "steps", p->relay_steps);
	for (k = 0; k < p->relay_steps; k++) {
		served += p->relay[k].served && p->relay[k].waiter_seen;
	}
	hs_json_u64(j, "served_across_processes", served);
	hs_json_open(j, "by_step", '[');
	for (k = 0; k < p->relay_steps; k++) {
		const struct hs_relay_step *s = &p->relay[k];

		hs_json_open(j, NULL, '{');
		hs_json_u64(j, "filler", s->filler);
		hs_json_u64(j, "waiter", s->waiter);
		hs_json_u64(j, "filled_blocks", s->filled_blocks);
		hs_json_bool(j, "waiter_seen_queued", s->waiter_seen);
		hs_json_bool(j, "served", s->served);
		hs_json_bool(j, "owner_tags_ok", s->filler_owner_ok && s->waiter_owner_ok);
		hs_json_u64(j, "wait_ns", s->wait_ns);
		hs_json_close(j, '}');
	}
	hs_json_close(j, ']');
	hs_json_close(j, '}');
}

static void hs_json_processes(struct hs_json *j, const struct hs_result *res)
{
	const struct hs_procs_result *p = res->procs;
	unsigned int i;

	hs_json_open(j, "processes", '{');
	hs_json_u64(j, "count", p->count);
	hs_json_open(j, "parent", '{');
	hs_json_i64(j, "pid", p->parent_pid);
	hs_json_address(j, "mapping", p->parent_mapping);
	hs_json_close(j, '}');
	hs_json_bool(j, "distinct_mappings", p->distinct_mappings);
	hs_json_u64(j, "cross_process_blocks", res->total.cross_received);
	hs_json_i64(j, "killed_process", p->victim);
	hs_json_bool(j, "killed_parked", p->victim_parked);
	hs_json_reclaimed(j, "reclaimed", &p->reclaimed);
	if (p->final_reclaim_done) {
		hs_json_reclaimed(j, "reclaimed_at_exit", &p->final_reclaim);
	}
	hs_json_relay(j, p);
	hs_json_open(j, "per_process", '[');
	for (i = 0; i < p->count; i++) {
		const struct hs_proc_result *pr = &p->proc[i];

		hs_json_open(j, NULL, '{');
		hs_json_u64(j, "index", pr->index);
		hs_json_i64(j, "pid", pr->pid);
		hs_json_address(j, "mapping", pr->mapping);
		hs_json_u64(j, "owner_tag", pr->owner_tag);
		hs_json_u64(j, "workers", pr->workers);
		hs_json_u64(j, "storm_threads", pr->storm_threads);
		hs_json_u64(j, "ops", pr->counts.ops);
		hs_json_u64(j, "cross_process_sent", pr->counts.cross_sent);
		hs_json_u64(j, "cross_process_received", pr->counts.cross_received);
		hs_json_u64(j, "blocking_allocs", pr->counts.blocking_allocs);
		hs_json_u64(j, "blocking_timeouts", pr->counts.blocking_timeouts);
		hs_json_str(j, "end", hs_proc_end_name(pr->end));
		hs_json_i64(j, "exit_code", pr->exit_code);
		hs_json_i64(j, "signal", pr->signal);
		if (pr->end == HS_PROC_KILLED || pr->end == HS_PROC_DIED) {
			hs_json_double(j, "ended_at_s", pr->ended_at_s);
		}
		if (pr->reclaimed_known) {
			hs_json_reclaimed(j, "reclaimed", &pr->reclaimed);
		}
		hs_json_close(j, '}');
	}
	hs_json_close(j, ']');
	hs_json_close(j, '}');
}

static void hs_json_tail(struct hs_json *j, const struct hs_result *res)
{
	const struct k_heap_counters *k = &res->counters;
	unsigned int i;

	hs_json_open(j, "cache", '{');
	hs_json_u64(j, "hits", k->cache_hits);
	hs_json_u64(j, "misses", k->cache_misses);
	hs_json_double(j, "hit_rate",
		       hs_ratio((double)k->cache_hits, (double)(k->cache_hits + k->cache_misses)));
	hs_json_u64(j, "refills", k->refills);
	hs_json_u64(j, "flushes", k->flushes);
	hs_json_u64(j, "drains", k->drains);
	hs_json_close(j, '}');
	hs_json_open(j, "blocking", '{');
	hs_json_u64(j, "waits", k->waits);
	hs_json_u64(j, "wakeups", k->handoffs);
	hs_json_u64(j, "timeouts", k->timeouts);
	hs_json_u64(j, "timeouts_seen", res->total.blocking_timeouts);
	hs_json_u64(j, "timeout_overshoot_max_ns", res->total.timeout_overshoot_max_ns);
	hs_json_close(j, '}');
	hs_json_open(j, "validation", '{');
	hs_json_u64(j, "runs", res->validations);
	hs_json_u64(j, "failures", res->validation_failures);
	hs_json_double(j, "max_ms", res->validate_max_ms);
	hs_json_close(j, '}');
	hs_json_open(j, "checks", '[');
	for (i = 0; i < res->nchecks; i++) {
		hs_json_open(j, NULL, '{');
		hs_json_str(j, "name", res->checks[i].name);
		hs_json_bool(j, "passed", res->checks[i].passed);
		hs_json_str(j, "detail", res->checks[i].detail);
		hs_json_close(j, '}');
	}
	hs_json_close(j, ']');
	hs_json_open(j, "errors", '[');
	pthread_mutex_lock(&res->failures->lock);
	for (i = 0; i < res->failures->count; i++) {
		hs_json_str(j, NULL, res->failures->messages[i]);
	}
	pthread_mutex_unlock(&res->failures->lock);
	hs_json_close(j, ']');
	hs_json_u64(j, "faults", atomic_load(&res->failures->faults));
	hs_json_open(j, "samples", '[');
	for (i = 0; i < res->nsamples; i++) {
		const struct hs_sample *s = &res->samples[i];

		hs_json_open(j, NULL, '{');
		hs_json_double(j, "t", s->t);
		hs_json_u64(j, "ops", s->ops);
		hs_json_u64(j, "worker_ops", s->worker_ops);
		hs_json_double(j, "ops_per_s", s->ops_per_s);
		hs_json_u64(j, "allocated_bytes", s->allocated_bytes);
		hs_json_u64(j, "cached_bytes", s->cached_bytes);
		hs_json_u64(j, "waiters", s->waiters);
		hs_json_u64(j, "alloc_p50_ns", s->alloc_p50_ns);
		hs_json_u64(j, "alloc_p99_ns", s->alloc_p99_ns);
		hs_json_u64(j, "free_p99_ns", s->free_p99_ns);
		hs_json_close(j, '}');
	}
	hs_json_close(j, ']');
}

int hs_report_json(FILE *f, const struct hs_result *res)
{
	struct hs_json j = {.f = f, .depth = 1};
	unsigned int i;

	fputc('{', f);
	hs_json_str(&j, "tool", "heapstress");
	hs_json_str(&j, "status", res->passed ? "pass" : "fail");
	hs_json_u64(&j, "seed", res->seed);
	hs_json_config(&j, res);
	hs_json_double(&j, "elapsed_s", res->elapsed_s);
	hs_json_counts(&j, "ops", &res->total);
	hs_json_counts(&j, "worker_ops", &res->worker_counts);
	hs_json_counts(&j, "storm_thread_ops", &res->storm_counts);
	hs_json_double(&j, "ops_per_s", hs_ratio((double)res->total.ops, res->elapsed_s));
	hs_json_open(&j, "per_cpu", '[');
	for (i = 0; i < res->ncpus; i++) {
		const struct hs_cpu_result *c = &res->cpus[i];

		hs_json_open(&j, NULL, '{');
		hs_json_i64(&j, "cpu", c->cpu);
		hs_json_u64(&j, "workers", c->workers);
		hs_json_u64(&j, "storm_threads", c->storm_threads);
		hs_json_u64(&j, "ops", c->ops);
		hs_json_double(&j, "ops_per_s", hs_ratio((double)c->ops, res->elapsed_s));
		hs_json_latency(&j, "alloc_ns", &c->alloc);
		hs_json_latency(&j, "free_ns", &c->free);
		hs_json_close(&j, '}');
	}
	hs_json_close(&j, ']');
	hs_json_open(&j, "latency_ns", '{');
	hs_json_latency(&j, "alloc", &res->alloc);
	hs_json_latency(&j, "free", &res->free);
	hs_json_latency(&j, "realloc", &res->realloc);
	hs_json_latency(&j, "wait", &res->wait);
	hs_json_close(&j, '}');
	hs_json_heap(&j, res);
	if (res->procs != NULL) {
		hs_json_processes(&j, res);
	}
	hs_json_tail(&j, res);
	fputs("\n}\n", f);
	return ferror(f) ? -1 : 0;
}

static void hs_table_latency_row(FILE *out, const char *name, const struct hs_hist_snapshot *h)
{
	char p50[24], p99[24], p999[24], max[24], mean[24];

	if (h->count == 0) {
		fprintf(out, "  %-16s %12s\n", name, "-");
		return;
	}
	hs_format_ns(hs_hist_percentile(h, 0.50), p50, sizeof(p50));
	hs_format_ns(hs_hist_percentile(h, 0.99), p99, sizeof(p99));
	hs_format_ns(hs_hist_percentile(h, 0.999), p999, sizeof(p999));
	hs_format_ns(h->max, max, sizeof(max));
	hs_format_ns((uint64_t)hs_hist_mean(h), mean, sizeof(mean));
	fprintf(out, "  %-16s %12llu %10s %10s %10s %10s %10s\n", name,
		(unsigned long long)h->count, p50, p99, p999, max, mean);
}

static void hs_table_cpus(FILE *out, const struct hs_result *res)
{
	char p50[24], p99[24], free99[24], cpu[16];
	unsigned int i;

	fprintf(out, "\nper-CPU throughput\n");
	fprintf(out, "  %-5s %7s %6s %12s %12s %10s %10s %10s\n", "cpu", "workers", "storm", "ops",
		"ops/s", "alloc p50", "alloc p99", "free p99");
	for (i = 0; i < res->ncpus; i++) {
		const struct hs_cpu_result *c = &res->cpus[i];

		if (c->workers + c->storm_threads == 0) {
			continue;
		}
		if (c->cpu < 0) {
			snprintf(cpu, sizeof(cpu), "any");
		} else {
			snprintf(cpu, sizeof(cpu), "%d", c->cpu);
		}
		hs_format_ns(hs_hist_percentile(&c->alloc, 0.50), p50, sizeof(p50));
		hs_format_ns(hs_hist_percentile(&c->alloc, 0.99), p99, sizeof(p99));
		hs_format_ns(hs_hist_percentile(&c->free, 0.99), free99, sizeof(free99));
		fprintf(out, "  %-5s %7u %6u %12llu %12.0f %10s %10s %10s\n", cpu, c->workers,
			c->storm_threads, (unsigned long long)c->ops,
			hs_ratio((double)c->ops, res->elapsed_s), p50, p99, free99);
	}
	fprintf(out, "  %-5s %7u %6u %12llu %12.0f\n", "all", res->workers, res->storm_threads,
		(unsigned long long)res->total.ops,
		hs_ratio((double)res->total.ops, res->elapsed_s));
	if (res->unpinned != 0) {
		fprintf(out, "  (%u threads could not be pinned; they ran on any CPU)\n",
			res->unpinned);
	}
}

static void hs_table_ops(FILE *out, const struct hs_result *res)
{
	const struct hs_counts *c = &res->total;
	unsigned int wl;
	bool first = true;

	fprintf(out, "\noperations: %llu by workers (", (unsigned long long)res->worker_counts.ops);
	for (wl = 0; wl < HS_WL_COUNT; wl++) {
		if (res->worker_counts.workload_ops[wl] == 0) {
			continue;
		}
		fprintf(out, "%s%s %.1f%%", first ? "" : ", ",
			hs_workload_name((enum hs_workload)wl),
			100.0 * hs_ratio((double)res->worker_counts.workload_ops[wl],
					 (double)res->worker_counts.ops));
		first = false;
	}
	fprintf(out, "), %llu by storm threads\n", (unsigned long long)res->storm_counts.ops);
	fprintf(out,
		"  allocs %llu (%.1f%% found no memory), aligned %llu (%.1f%%), reallocs %llu "
		"(%llu moved, %llu refused)\n",
		(unsigned long long)c->allocs,
		100.0 * hs_ratio((double)c->alloc_failures, (double)c->allocs),
		(unsigned long long)c->aligned_allocs,
		100.0 * hs_ratio((double)c->aligned_failures, (double)c->aligned_allocs),
		(unsigned long long)c->reallocs, (unsigned long long)c->realloc_moves,
		(unsigned long long)c->realloc_failures);
	fprintf(out,
		"  blocking allocs %llu (%llu timed out), frees %llu (%llu of them at cleanup), "
		"blocks passed between CPUs %llu",
		(unsigned long long)c->blocking_allocs, (unsigned long long)c->blocking_timeouts,
		(unsigned long long)c->frees, (unsigned long long)c->cleanup_frees,
		(unsigned long long)c->consumed);
	if (res->procs != NULL) {
		fprintf(out, ", between processes %llu", (unsigned long long)c->cross_received);
	}
	fputc('\n', out);
}

static void hs_table_heap(FILE *out, const struct hs_result *res)
{
	const struct hs_heap_map *map = &res->map;
	const struct k_heap_counters *k = &res->counters;
	char size[32], peak[32], held[32], cached[32], free_text[32], largest[32], late[24];
	double heap = (double)res->heap_bytes;

	hs_format_bytes(res->heap_bytes, size, sizeof(size));
	hs_format_bytes(res->peak_allocated, peak, sizeof(peak));
	fprintf(out,
		"\nheap: %s; peak in use %s (%.1f%%, cached blocks included); mean held by "
		"users %.1f%%\n",
		size, peak, 100.0 * hs_ratio((double)res->peak_allocated, heap),
		100.0 * res->mean_used_fraction);
	if (res->have_stop_stats) {
		hs_format_bytes(res->at_stop.allocated_bytes, held, sizeof(held));
		hs_format_bytes(res->at_stop.cached_bytes, cached, sizeof(cached));
		hs_format_bytes(res->at_stop.free_bytes, free_text, sizeof(free_text));
		fprintf(out, "  at stop: %s held by users, %s cached, %s free", held, cached,
			free_text);
		if (map->available) {
			hs_format_bytes(map->largest_free, largest, sizeof(largest));
			fprintf(out, " in %zu chunks, largest %s (fragmentation %.1f%%)",
				map->state_chunks[K_HEAP_CHUNK_FREE], largest,
				100.0 *
				    (1.0 - hs_ratio((double)map->largest_free,
						    (double)map->state_bytes[K_HEAP_CHUNK_FREE])));
		}
		fputc('\n', out);
	}
	fprintf(
	    out,
	    "caches: hit rate %.1f%% (%llu hits, %llu misses), %llu refills, %llu flushes, %llu "
	    "drains\n",
	    100.0 * hs_ratio((double)k->cache_hits, (double)(k->cache_hits + k->cache_misses)),
	    (unsigned long long)k->cache_hits, (unsigned long long)k->cache_misses,
	    (unsigned long long)k->refills, (unsigned long long)k->flushes,
	    (unsigned long long)k->drains);
	fprintf(out, "blocking: %llu waits, %llu wake-ups with a block handed over, %llu timeouts",
		(unsigned long long)k->waits, (unsigned long long)k->handoffs,
		(unsigned long long)k->timeouts);
	if (res->total.blocking_timeouts != 0) {
		hs_format_ns(res->total.timeout_overshoot_max_ns, late, sizeof(late));
		fprintf(out, " (returned up to %s after the deadline)", late);
	}
	fputc('\n', out);
}

static void hs_table_proc_end(FILE *out, const struct hs_proc_result *p, bool parked)
{
	switch (p->end) {
	case HS_PROC_EXITED:
		fprintf(out, "exited %d", p->exit_code);
		break;
	case HS_PROC_KILLED:
		fprintf(out, "SIGKILL at %.2f s (--kill-one%s)", p->ended_at_s,
			parked ? "=parked" : "");
		break;
	case HS_PROC_DIED:
		if (p->signal != 0) {
			fprintf(out, "DIED: %s at %.2f s", strsignal(p->signal), p->ended_at_s);
		} else {
			fprintf(out, "DIED: exit %d at %.2f s", p->exit_code, p->ended_at_s);
		}
		break;
	case HS_PROC_NOT_ENDED:
		fputs("never ended", out);
		break;
	}
}

static void hs_table_processes(FILE *out, const struct hs_result *res)
{
	const struct hs_procs_result *p = res->procs;
	char bytes[32];
	uint64_t longest = 0;
	unsigned int i, served = 0;

	fprintf(out,
		"\n%u processes on one heap in shared memory: the parent (pid %ld) maps it at "
		"%#llx, %s\n",
		p->count, p->parent_pid, (unsigned long long)p->parent_mapping,
		p->distinct_mappings ? "every worker process at an address of its own"
				     : "NOT every worker process at an address of its own");
	fprintf(out, "  %-4s %8s %-18s %5s %12s %10s %10s  %s\n", "proc", "pid", "mapping", "tag",
		"ops", "sent", "received", "end");
	for (i = 0; i < p->count; i++) {
		const struct hs_proc_result *pr = &p->proc[i];

		fprintf(out, "  %-4u %8ld %#-18llx %5u %12llu %10llu %10llu  ", pr->index, pr->pid,
			(unsigned long long)pr->mapping, pr->owner_tag,
			(unsigned long long)pr->counts.ops,
			(unsigned long long)pr->counts.cross_sent,
			(unsigned long long)pr->counts.cross_received);
		hs_table_proc_end(out, pr, p->victim_parked);
		fputc('\n', out);
	}
	if (p->reclaim_calls != 0) {
		hs_format_bytes(p->reclaimed.bytes, bytes, sizeof(bytes));
		fprintf(out,
			"  reclaimed from dead processes: %u process%s, %zu blocks (%s), %u "
			"waits\n",
			p->reclaimed.processes, p->reclaimed.processes == 1 ? "" : "es",
			p->reclaimed.blocks, bytes, p->reclaimed.waiters);
	}
	for (i = 0; i < p->relay_steps; i++) {
		served += p->relay[i].served && p->relay[i].waiter_seen;
		longest = p->relay[i].wait_ns > longest ? p->relay[i].wait_ns : longest;
	}
	if (p->relay_steps != 0) {
		hs_format_bytes(p->relay_block, bytes, sizeof(bytes));
		fprintf(out,
			"  wake-up relay: %u of %u allocations (%s each) blocked on a full heap "
			"were served by another process's free; longest wait %.2f ms\n",
			served, p->relay_steps, bytes, (double)longest / 1e6);
	}
}

void hs_report_table(FILE *out, const struct hs_result *res)
{
	char checked[32];
	unsigned int i;

	hs_table_cpus(out, res);
	if (res->procs != NULL) {
		hs_table_processes(out, res);
	}
	fprintf(out, "\nlatency %21s %10s %10s %10s %10s %10s\n", "count", "p50", "p99", "p99.9",
		"max", "mean");
	hs_table_latency_row(out, "alloc", &res->alloc);
	hs_table_latency_row(out, "free", &res->free);
	hs_table_latency_row(out, "realloc", &res->realloc);
	hs_table_latency_row(out, "blocking wait", &res->wait);
	hs_table_ops(out, res);
	hs_table_heap(out, res);
	hs_format_bytes(res->total.bytes_checked, checked, sizeof(checked));
	fprintf(
	    out,
	    "checks: %llu block patterns verified (%s), %u heap validations (slowest %.2f ms)\n",
	    (unsigned long long)res->total.blocks_checked, checked, res->validations,
	    res->validate_max_ms);
	for (i = 0; i < res->nchecks; i++) {
		fprintf(out, "  [%s] %s: %s\n", res->checks[i].passed ? " ok " : "FAIL",
			res->checks[i].name, res->checks[i].detail);
	}
	fflush(out);
}
