/*
 * heapstress options: parsing, defaults and the checks that need no heap.
 *
 * Every number the user types goes through one of the hs_parse_* functions,
 * which accept the whole string or nothing; a trailing character is an
 * error, never silently ignored. Defaults are resolved here so the rest of
 * the tool sees concrete values (CPU list, thread count, heap size).
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HS_DEFAULT_HEAP_BYTES (16u << 20)
#define HS_DEFAULT_SIZE_MIN   8
#define HS_DEFAULT_SIZE_MAX   4096
#define HS_DEFAULT_DURATION   10.0
#define HS_MAX_DURATION	      (7.0 * 24 * 3600)

static const char *const hs_workload_names[HS_WL_COUNT] = {
    [HS_WL_RANDOM] = "random",	 [HS_WL_POWERLAW] = "powerlaw", [HS_WL_PRODCONS] = "prodcons",
    [HS_WL_FRAG] = "frag",	 [HS_WL_STORM] = "storm",	[HS_WL_REALLOC] = "realloc",
    [HS_WL_ALIGNED] = "aligned",
};

const char *hs_workload_name(enum hs_workload workload)
{
	return (unsigned int)workload < HS_WL_COUNT ? hs_workload_names[workload] : "?";
}

const char *hs_size_dist_name(enum hs_size_dist dist)
{
	switch (dist) {
	case HS_DIST_UNIFORM:
		return "uniform";
	case HS_DIST_POWERLAW:
		return "powerlaw";
	case HS_DIST_FIXED:
		return "fixed";
	case HS_DIST_PER_WORKLOAD:
		break;
	}
	return "per-workload";
}

void hs_usage_error(FILE *err, const char *fmt, ...)
{
	va_list ap;

	fputs("heapstress: ", err);
	va_start(ap, fmt);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fputs("\nTry 'heapstress --help' for more information.\n", err);
}

static void hs_print_help(FILE *out)
{
	fputs("Usage: heapstress [OPTIONS]\n"
	      "Hammers a kheap k_heap from every CPU, proves nothing was corrupted and reports\n"
	      "throughput, latency, utilisation and fragmentation.\n"
	      "\n"
	      "Workloads:\n"
	      "  -w, --workload LIST        comma-separated, any of: random, powerlaw, prodcons,\n"
	      "                             frag, storm, realloc, aligned (or all)\n"
	      "      --mix                  every workload, mixed (the default)\n"
	      "Threads and CPUs:\n"
	      "  -t, --threads N            worker threads (default: one per CPU in --cpus)\n"
	      "      --cpus LIST            pin threads round-robin to these CPUs, e.g. 0-3,6\n"
	      "                             (default: every CPU this process may run on)\n"
	      "      --storm-threads N      extra threads for the storm workload, which asks\n"
	      "                             for far more memory than exists (default 4 per\n"
	      "                             worker, at least 8)\n"
	      "Heap:\n"
	      "      --heap-size BYTES      heap size; K, M, G suffixes (default 16M, more for\n"
	      "                             many threads)\n"
	      "      --sizes DIST           request sizes: [uniform:|powerlaw:|fixed:]MIN[-MAX],\n"
	      "                             e.g. 16-64K or powerlaw:8-1M (default 8-4K, shape\n"
	      "                             chosen by each workload)\n"
	      "      --caches on|off        per-CPU caches (default on)\n"
	      "Processes:\n"
	      "      --processes N          fork N worker processes (up to 63) that share one\n"
	      "                             heap in a memfd, each mapping it at its own address\n"
	      "                             and running --threads workers and its own storm\n"
	      "                             threads; blocks also pass between processes\n"
	      "                             (default 1: everything in this process)\n"
	      "      --kill-one[=parked]    SIGKILL the last worker process halfway through,\n"
	      "                             reclaim its blocks and check the heap (needs\n"
	      "                             --processes 3 or more); =parked lets its threads\n"
	      "                             finish the heap call they are in first\n"
	      "Length and reproducibility:\n"
	      "  -d, --duration SECS        run time, e.g. 10, 2.5, 500ms (default 10)\n"
	      "  -n, --ops N                stop after N worker operations instead\n"
	      "  -s, --seed S               seed (decimal or 0x hex); the seed is always printed\n"
	      "                             and replays the same request sequence\n"
	      "Checks and output:\n"
	      "      --validate-interval SECS  full heap validation period while running\n"
	      "                             (default 1; 0 validates only at the end)\n"
	      "      --json FILE            also write the report as JSON\n"
	      "      --svg FILE             write a heap map and throughput/latency charts\n"
	      "  -q, --quiet                no progress line and no report table\n"
	      "  -h, --help                 show this help\n"
	      "\n"
	      "Exit status: 0 when every check passed, 1 when corruption, a lost block, a\n"
	      "leaked byte or a heap fault was found, 2 for bad usage.\n",
	      out);
}

static uint64_t hs_suffix_multiplier(const char *suffix, bool *ok)
{
	static const char units[] = "KMGT";
	const char *unit;
	uint64_t mult = 1;

	*ok = true;
	if (*suffix == '\0') {
		return 1;
	}
	unit = strchr(units, toupper((unsigned char)*suffix));
	if (unit == NULL) {
		*ok = false;
		return 0;
	}
	mult <<= 10 * (unsigned int)(unit - units + 1);
	suffix++;
	if (strcmp(suffix, "") != 0 && strcmp(suffix, "B") != 0 && strcmp(suffix, "iB") != 0) {
		*ok = false;
	}
	return mult;
}

int hs_parse_bytes(const char *text, uint64_t *bytes)
{
	char *end;
	unsigned long long value;
	uint64_t mult;
	bool ok;

	if (text == NULL || !isdigit((unsigned char)text[0])) {
		return -1;
	}
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0) {
		return -1;
	}
	if (strcmp(end, "B") == 0) {
		mult = 1;
	} else {
		mult = hs_suffix_multiplier(end, &ok);
		if (!ok) {
			return -1;
		}
	}
	if (value > UINT64_MAX / mult) {
		return -1;
	}
	*bytes = (uint64_t)value * mult;
	return 0;
}

static int hs_parse_u64(const char *text, uint64_t *value, int base)
{
	char *end;
	unsigned long long v;

	if (text == NULL || !isdigit((unsigned char)text[0])) {
		return -1;
	}
	errno = 0;
	v = strtoull(text, &end, base);
	if (errno != 0 || *end != '\0') {
		return -1;
	}
	*value = (uint64_t)v;
	return 0;
}

int hs_parse_seconds(const char *text, double *seconds)
{
	char *end;
	double value;

	if (text == NULL || !(isdigit((unsigned char)text[0]) || text[0] == '.')) {
		return -1;
	}
	errno = 0;
	value = strtod(text, &end);
	if (errno != 0 || !isfinite(value)) {
		return -1;
	}
	if (strcmp(end, "ms") == 0) {
		value /= 1000.0;
	} else if (strcmp(end, "m") == 0) {
		value *= 60.0;
	} else if (strcmp(end, "s") != 0 && *end != '\0') {
		return -1;
	}
	*seconds = value;
	return 0;
}

static int hs_parse_cpu_number(const char **cursor, long *cpu)
{
	char *end;

	if (!isdigit((unsigned char)**cursor)) {
		return -1;
	}
	errno = 0;
	*cpu = strtol(*cursor, &end, 10);
	if (errno != 0 || *cpu >= HS_MAX_CPUS) {
		return -1;
	}
	*cursor = end;
	return 0;
}

int hs_parse_cpu_list(const char *text, int *cpus, unsigned int max_cpus)
{
	bool seen[HS_MAX_CPUS] = {false};
	const char *cursor = text;
	unsigned int count = 0;
	long first, last, cpu;

	if (text == NULL || *text == '\0') {
		return -1;
	}
	for (;;) {
		if (hs_parse_cpu_number(&cursor, &first) != 0) {
			return -1;
		}
		last = first;
		if (*cursor == '-') {
			cursor++;
			if (hs_parse_cpu_number(&cursor, &last) != 0 || last < first) {
				return -1;
			}
		}
		for (cpu = first; cpu <= last; cpu++) {
			seen[cpu] = true;
		}
		if (*cursor == '\0') {
			break;
		}
		if (*cursor != ',') {
			return -1;
		}
		cursor++;
	}
	for (cpu = 0; cpu < HS_MAX_CPUS; cpu++) {
		if (seen[cpu]) {
			if (count == max_cpus) {
				return -1;
			}
			cpus[count++] = (int)cpu;
		}
	}
	return (int)count;
}

void hs_format_cpu_list(const int *cpus, unsigned int ncpus, char *buf, size_t len)
{
	size_t used = 0;
	unsigned int i = 0, j;
	int n;

	buf[0] = '\0';
	while (i < ncpus && used < len) {
		j = i;
		while (j + 1 < ncpus && cpus[j + 1] == cpus[j] + 1) {
			j++;
		}
		if (j == i) {
			n = snprintf(buf + used, len - used, "%s%d", i ? "," : "", cpus[i]);
		} else {
			n = snprintf(buf + used, len - used, "%s%d-%d", i ? "," : "", cpus[i],
				     cpus[j]);
		}
		if (n < 0) {
			return;
		}
		used += (size_t)n;
		i = j + 1;
	}
}

void hs_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double value = (double)bytes;
	unsigned int unit = 0;

	while (value >= 1024.0 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024.0;
		unit++;
	}
	if (unit == 0) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	} else {
		snprintf(buf, len, "%.1f %s", value, units[unit]);
	}
}

static int hs_parse_workloads(const char *text, unsigned int *mask)
{
	char copy[256];
	char *token, *save = NULL;
	unsigned int i;

	if (strlen(text) >= sizeof(copy)) {
		return -1;
	}
	strcpy(copy, text);
	*mask = 0;
	for (token = strtok_r(copy, ",", &save); token != NULL;
	     token = strtok_r(NULL, ",", &save)) {
		if (strcmp(token, "all") == 0 || strcmp(token, "mix") == 0) {
			*mask |= HS_WL_ALL;
			continue;
		}
		for (i = 0; i < HS_WL_COUNT; i++) {
			if (strcmp(token, hs_workload_names[i]) == 0) {
				break;
			}
		}
		if (i == HS_WL_COUNT) {
			return -1;
		}
		*mask |= 1u << i;
	}
	return *mask != 0 ? 0 : -1;
}

static int hs_parse_sizes(const char *text, struct hs_options *opt)
{
	const char *range = text;
	const char *dash;
	char low[64];
	uint64_t min, max;

	opt->size_dist = HS_DIST_PER_WORKLOAD;
	if (strncmp(text, "uniform:", 8) == 0) {
		opt->size_dist = HS_DIST_UNIFORM;
		range = text + 8;
	} else if (strncmp(text, "powerlaw:", 9) == 0) {
		opt->size_dist = HS_DIST_POWERLAW;
		range = text + 9;
	} else if (strncmp(text, "fixed:", 6) == 0) {
		opt->size_dist = HS_DIST_FIXED;
		range = text + 6;
	}
	dash = strchr(range, '-');
	if (dash == NULL) {
		if (hs_parse_bytes(range, &min) != 0) {
			return -1;
		}
		max = min;
	} else {
		if ((size_t)(dash - range) >= sizeof(low)) {
			return -1;
		}
		memcpy(low, range, (size_t)(dash - range));
		low[dash - range] = '\0';
		if (hs_parse_bytes(low, &min) != 0 || hs_parse_bytes(dash + 1, &max) != 0) {
			return -1;
		}
		if (opt->size_dist == HS_DIST_FIXED) {
			return -1;
		}
	}
	if (min == 0 || max < min || max > SIZE_MAX / 2) {
		return -1;
	}
	opt->size_min = (size_t)min;
	opt->size_max = (size_t)max;
	return 0;
}

static int hs_resolve_cpus(struct hs_options *opt, FILE *err)
{
	cpu_set_t allowed;
	char list[256];
	int available[HS_MAX_CPUS];
	unsigned int navailable = 0, i;
	int cpu;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		hs_usage_error(err, "cannot read this process's CPU affinity: %s", strerror(errno));
		return -1;
	}
	for (cpu = 0; cpu < HS_MAX_CPUS && cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &allowed)) {
			available[navailable++] = cpu;
		}
	}
	if (!opt->cpus_given) {
		memcpy(opt->cpus, available, navailable * sizeof(available[0]));
		opt->ncpus = navailable;
		return 0;
	}
	for (i = 0; i < opt->ncpus; i++) {
		if (opt->cpus[i] >= CPU_SETSIZE || !CPU_ISSET(opt->cpus[i], &allowed)) {
			hs_format_cpu_list(available, navailable, list, sizeof(list));
			hs_usage_error(
			    err, "--cpus: CPU %d does not exist or is not available (usable: %s)",
			    opt->cpus[i], list);
			return -1;
		}
	}
	return 0;
}

static void hs_options_defaults(struct hs_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->workloads = HS_WL_ALL;
	opt->storm_threads = -1;
	opt->size_dist = HS_DIST_PER_WORKLOAD;
	opt->size_min = HS_DEFAULT_SIZE_MIN;
	opt->size_max = HS_DEFAULT_SIZE_MAX;
	opt->caches = true;
	opt->validate_interval_s = 1.0;
	opt->processes = 1;
}

enum hs_long_only_option {
	HS_OPT_MIX = 256,
	HS_OPT_CPUS,
	HS_OPT_STORM_THREADS,
	HS_OPT_HEAP_SIZE,
	HS_OPT_SIZES,
	HS_OPT_CACHES,
	HS_OPT_VALIDATE_INTERVAL,
	HS_OPT_JSON,
	HS_OPT_SVG,
	HS_OPT_INJECT,
	HS_OPT_PROCESSES,
	HS_OPT_KILL_ONE,
	HS_OPT_CRASH_ONE,
};

static const struct option hs_long_options[] = {
    {"workload", required_argument, NULL, 'w'},
    {"mix", no_argument, NULL, HS_OPT_MIX},
    {"threads", required_argument, NULL, 't'},
    {"cpus", required_argument, NULL, HS_OPT_CPUS},
    {"storm-threads", required_argument, NULL, HS_OPT_STORM_THREADS},
    {"heap-size", required_argument, NULL, HS_OPT_HEAP_SIZE},
    {"sizes", required_argument, NULL, HS_OPT_SIZES},
    {"caches", required_argument, NULL, HS_OPT_CACHES},
    {"duration", required_argument, NULL, 'd'},
    {"ops", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, 's'},
    {"validate-interval", required_argument, NULL, HS_OPT_VALIDATE_INTERVAL},
    {"json", required_argument, NULL, HS_OPT_JSON},
    {"svg", required_argument, NULL, HS_OPT_SVG},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"inject-corruption", required_argument, NULL, HS_OPT_INJECT},
    {"processes", required_argument, NULL, HS_OPT_PROCESSES},
    {"kill-one", optional_argument, NULL, HS_OPT_KILL_ONE},
    {"crash-one", no_argument, NULL, HS_OPT_CRASH_ONE},
    {NULL, 0, NULL, 0},
};

/* Applies one option; returns -1 after printing an error. */
static int hs_apply_option(struct hs_options *opt, int code, const char *arg, bool *duration_given,
			   FILE *err)
{
	uint64_t value;
	int count;

	switch (code) {
	case 'w':
		if (hs_parse_workloads(arg, &opt->workloads) != 0) {
			hs_usage_error(err, "--workload: unknown workload in '%s'", arg);
			return -1;
		}
		return 0;
	case HS_OPT_MIX:
		opt->workloads = HS_WL_ALL;
		return 0;
	case 't':
		if (hs_parse_u64(arg, &value, 10) != 0 || value == 0 || value > HS_MAX_THREADS) {
			hs_usage_error(err, "--threads: '%s' is not a thread count (1-%d)", arg,
				       HS_MAX_THREADS);
			return -1;
		}
		opt->threads = (unsigned int)value;
		return 0;
	case HS_OPT_CPUS:
		count = hs_parse_cpu_list(arg, opt->cpus, HS_MAX_CPUS);
		if (count <= 0) {
			hs_usage_error(err, "--cpus: '%s' is not a CPU list like 0-3,6 (CPUs 0-%d)",
				       arg, HS_MAX_CPUS - 1);
			return -1;
		}
		opt->ncpus = (unsigned int)count;
		opt->cpus_given = true;
		return 0;
	case HS_OPT_STORM_THREADS:
		if (hs_parse_u64(arg, &value, 10) != 0 || value > HS_MAX_THREADS) {
			hs_usage_error(err, "--storm-threads: '%s' is not a thread count (0-%d)",
				       arg, HS_MAX_THREADS);
			return -1;
		}
		opt->storm_threads = (int)value;
		return 0;
	case HS_OPT_HEAP_SIZE:
		if (hs_parse_bytes(arg, &value) != 0 || value == 0 || value > SIZE_MAX / 2) {
			hs_usage_error(err, "--heap-size: '%s' is not a size like 65536, 64K, 16M",
				       arg);
			return -1;
		}
		opt->heap_size = (size_t)value;
		return 0;
	case HS_OPT_SIZES:
		if (hs_parse_sizes(arg, opt) != 0) {
			hs_usage_error(err,
				       "--sizes: '%s' is not [uniform:|powerlaw:|fixed:]MIN[-MAX] "
				       "with 1 <= MIN <= MAX",
				       arg);
			return -1;
		}
		return 0;
	case HS_OPT_CACHES:
		if (strcmp(arg, "on") == 0) {
			opt->caches = true;
		} else if (strcmp(arg, "off") == 0) {
			opt->caches = false;
		} else {
			hs_usage_error(err, "--caches: expected on or off, got '%s'", arg);
			return -1;
		}
		return 0;
	case 'd':
		if (hs_parse_seconds(arg, &opt->duration_s) != 0 || opt->duration_s <= 0 ||
		    opt->duration_s > HS_MAX_DURATION) {
			hs_usage_error(
			    err, "--duration: '%s' is not a positive time like 10, 2.5s, 500ms",
			    arg);
			return -1;
		}
		*duration_given = true;
		return 0;
	case 'n':
		if (hs_parse_u64(arg, &opt->ops, 10) != 0 || opt->ops == 0) {
			hs_usage_error(err, "--ops: '%s' is not a positive operation count", arg);
			return -1;
		}
		return 0;
	case 's':
		if (hs_parse_u64(arg, &opt->seed, 0) != 0) {
			hs_usage_error(err, "--seed: '%s' is not a number (decimal or 0x hex)",
				       arg);
			return -1;
		}
		opt->seed_given = true;
		return 0;
	case HS_OPT_VALIDATE_INTERVAL:
		if (hs_parse_seconds(arg, &opt->validate_interval_s) != 0) {
			hs_usage_error(
			    err, "--validate-interval: '%s' is not a time like 1, 0.5, 250ms", arg);
			return -1;
		}
		return 0;
	case HS_OPT_JSON:
		opt->json_path = arg;
		return 0;
	case HS_OPT_SVG:
		opt->svg_path = arg;
		return 0;
	case 'q':
		opt->quiet = true;
		return 0;
	case HS_OPT_INJECT:
		if (strcmp(arg, "pattern") == 0) {
			opt->inject = HS_INJECT_PATTERN;
		} else if (strcmp(arg, "header") == 0) {
			opt->inject = HS_INJECT_HEADER;
		} else {
			hs_usage_error(
			    err, "--inject-corruption: expected pattern or header, got '%s'", arg);
			return -1;
		}
		return 0;
	case HS_OPT_PROCESSES:
		if (hs_parse_u64(arg, &value, 10) != 0 || value == 0 || value > HS_MAX_PROCESSES) {
			hs_usage_error(err,
				       "--processes: '%s' is not a process count (1-%d: the parent "
				       "is attached to the shared heap too)",
				       arg, HS_MAX_PROCESSES);
			return -1;
		}
		opt->processes = (unsigned int)value;
		return 0;
	case HS_OPT_KILL_ONE:
		if (arg != NULL && strcmp(arg, "parked") != 0) {
			hs_usage_error(err, "--kill-one: expected no value or =parked, got '%s'",
				       arg);
			return -1;
		}
		opt->kill_one = true;
		opt->kill_parked = arg != NULL;
		return 0;
	case HS_OPT_CRASH_ONE:
		opt->crash_one = true;
		return 0;
	default:
		break;
	}
	return -1;
}

/* What --processes needs from the other options, checked once they are all known. */
static int hs_check_processes(const struct hs_options *opt, FILE *err)
{
	uint64_t threads =
	    (uint64_t)opt->processes * (opt->threads + (unsigned int)opt->storm_threads);

	if (opt->kill_one && opt->processes < 3) {
		hs_usage_error(err, "--kill-one needs --processes 3 or more (two survivors keep "
				    "passing blocks)");
		return -1;
	}
	if (opt->crash_one && opt->processes < 2) {
		hs_usage_error(err, "--crash-one needs --processes 2 or more");
		return -1;
	}
	if (opt->processes == 1) {
		return 0;
	}
	if (opt->inject != HS_INJECT_NONE) {
		hs_usage_error(err, "--inject-corruption cannot be combined with --processes (it "
				    "damages a heap only this process uses)");
		return -1;
	}
	if (threads > HS_MAX_THREADS) {
		hs_usage_error(err,
			       "--processes %u with %u workers and %d storm threads each makes "
			       "%llu threads (at most %d)",
			       opt->processes, opt->threads, opt->storm_threads,
			       (unsigned long long)threads, HS_MAX_THREADS);
		return -1;
	}
	if (opt->heap_size <= KHEAP_SHARED_MIN_BYTES) {
		hs_usage_error(err,
			       "--heap-size %zu is too small for a shared heap (it needs more than "
			       "%u bytes)",
			       opt->heap_size, KHEAP_SHARED_MIN_BYTES);
		return -1;
	}
	return 0;
}

/* Resolves defaults that depend on other options, and cross-option checks. */
static int hs_options_finish(struct hs_options *opt, bool duration_given, FILE *err)
{
	uint64_t per_thread, workers;

	if (duration_given && opt->ops != 0) {
		hs_usage_error(err, "--duration and --ops cannot be combined");
		return -1;
	}
	if (!duration_given && opt->ops == 0) {
		opt->duration_s = HS_DEFAULT_DURATION;
	}
	if (opt->validate_interval_s < 0) {
		hs_usage_error(err, "--validate-interval must not be negative");
		return -1;
	}
	if (hs_resolve_cpus(opt, err) != 0) {
		return -1;
	}
	if (opt->threads == 0) {
		opt->threads = opt->ncpus;
	}
	if (opt->storm_threads > 0 && !(opt->workloads & (1u << HS_WL_STORM))) {
		hs_usage_error(err, "--storm-threads needs the storm workload (--workload storm)");
		return -1;
	}
	if (opt->storm_threads < 0) {
		opt->storm_threads = 0;
		if (opt->workloads & (1u << HS_WL_STORM)) {
			opt->storm_threads = opt->threads * 4 < 8 ? 8 : (int)(opt->threads * 4);
			if (opt->storm_threads > HS_MAX_THREADS) {
				opt->storm_threads = HS_MAX_THREADS;
			}
		}
	}
	if (opt->heap_size == 0) {
		per_thread = 16 * ((uint64_t)opt->size_max + 16);
		workers = (uint64_t)opt->threads * opt->processes;
		opt->heap_size = HS_DEFAULT_HEAP_BYTES;
		if (per_thread * workers > opt->heap_size) {
			opt->heap_size = (size_t)(((per_thread * workers) + (1u << 20) - 1) &
						  ~(uint64_t)((1u << 20) - 1));
		}
	}
	if (opt->size_max > opt->heap_size / 4) {
		hs_usage_error(
		    err,
		    "--heap-size %zu is too small for requests up to %zu bytes (--sizes): "
		    "a request may take at most a quarter of the heap",
		    opt->heap_size, opt->size_max);
		return -1;
	}
	return hs_check_processes(opt, err);
}

enum hs_parse_result hs_options_parse(struct hs_options *opt, int argc, char **argv, FILE *out,
				      FILE *err)
{
	bool duration_given = false;
	int code;

	hs_options_defaults(opt);
	opterr = 0;
	optind = 0;
	while ((code = getopt_long(argc, argv, ":w:t:d:n:s:qh", hs_long_options, NULL)) != -1) {
		if (code == 'h') {
			hs_print_help(out);
			return HS_PARSE_HELP;
		}
		if (code == '?') {
			if (optopt != 0) {
				hs_usage_error(err, "unknown option '-%c'", optopt);
			} else {
				hs_usage_error(err, "unknown option '%s'", argv[optind - 1]);
			}
			return HS_PARSE_ERROR;
		}
		if (code == ':') {
			hs_usage_error(err, "option '%s' needs a value", argv[optind - 1]);
			return HS_PARSE_ERROR;
		}
		if (hs_apply_option(opt, code, optarg, &duration_given, err) != 0) {
			return HS_PARSE_ERROR;
		}
	}
	if (optind < argc) {
		hs_usage_error(err, "unexpected argument '%s'", argv[optind]);
		return HS_PARSE_ERROR;
	}
	if (hs_options_finish(opt, duration_given, err) != 0) {
		return HS_PARSE_ERROR;
	}
	return HS_PARSE_RUN;
}
