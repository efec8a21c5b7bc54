/*
 * heapstress pictures: one SVG with the heap map at the end of the run and
 * charts of throughput, heap use and latency over time.
 *
 * The heap map lays the region out in rows by offset, left to right, top to
 * bottom; each chunk is a rect coloured by its state (used, free, metadata,
 * or cached with one colour per CPU), so holes between used chunks, which
 * is what fragmentation looks like, stand out. Heaps with more chunks than
 * can be drawn one by one are drawn in cells, each coloured by the state
 * holding most of its bytes. Every chunk or cell rect has class "chunk".
 * The document is self-contained, valid XML and starts with "<svg".
 */
#ifndef HEAPSTRESS_SVG_H
#define HEAPSTRESS_SVG_H

#include <stdio.h>

#include "result.h"

/* 0, or -1 when writing failed. */
int hs_svg_write(FILE *f, const struct hs_result *res);

#endif
