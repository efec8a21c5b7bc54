/*
 * heapstress runner: sets up the heap and the threads, samples the run,
 * stops it, cross-checks everything and writes the reports.
 *
 * Exit status contract: 0 when every check passed, 1 when the run found
 * corruption, a lost block, a leaked byte, a heap fault or an inconsistent
 * count, 2 for bad usage (including a heap too small for the threads asked
 * for, and output files that cannot be created).
 */
#ifndef HEAPSTRESS_RUN_H
#define HEAPSTRESS_RUN_H

#include <stdio.h>

#include "options.h"

enum hs_exit {
	HS_EXIT_PASS = 0,
	HS_EXIT_FAIL = 1,
	HS_EXIT_USAGE = 2,
};

/* Runs one stress run with parsed options. */
int hs_run(const struct hs_options *opt, FILE *out, FILE *err);

/* The whole program: parse argv, run, report. */
int hs_main(int argc, char **argv);

#endif
