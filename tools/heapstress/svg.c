/*
 * heapstress pictures: SVG writer.
 *
 * Coordinates are computed in doubles and printed with two decimals; every
 * piece of text goes through hs_svg_text, which escapes XML's special
 * characters, so the file stays well-formed whatever it shows. A map chunk
 * that crosses a row boundary is drawn as one rect per row it covers.
 */
#include "svg.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define HS_SVG_WIDTH	    1000.0
#define HS_SVG_MAP_X	    90.0
#define HS_SVG_MAP_W	    880.0
#define HS_SVG_MAP_Y	    90.0
#define HS_SVG_ROWS	    64
#define HS_SVG_ROW_H	    8.0
#define HS_SVG_ROW_GAP	    2.0
#define HS_SVG_CELLS	    440
#define HS_SVG_MAX_CHUNKS   20000
#define HS_SVG_TOOLTIP_MAX  3000
#define HS_SVG_PANEL_H	    150.0
#define HS_SVG_PANEL_GAP    60.0
#define HS_SVG_HOLES_COLOUR "#9fbbe3"

static const char *const hs_cached_colours[] = {
    "#f28e2b", "#e15759", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#d37295", "#b6992d",
};

#define HS_CACHED_COLOURS (sizeof(hs_cached_colours) / sizeof(hs_cached_colours[0]))
#define HS_DEPOT_COLOUR	  "#76b7b2"

static const char *hs_state_colour(enum k_heap_chunk_state state, int cpu)
{
	switch (state) {
	case K_HEAP_CHUNK_USED:
		return "#3b6fb6";
	case K_HEAP_CHUNK_FREE:
		return "#cdeccd";
	case K_HEAP_CHUNK_CACHED:
		if (cpu == K_HEAP_WALK_DEPOT) {
			return HS_DEPOT_COLOUR;
		}
		return hs_cached_colours[(unsigned int)(cpu < 0 ? 0 : cpu) % HS_CACHED_COLOURS];
	case K_HEAP_CHUNK_METADATA:
		break;
	}
	return "#555555";
}

static const char *hs_state_name(enum k_heap_chunk_state state)
{
	switch (state) {
	case K_HEAP_CHUNK_USED:
		return "used";
	case K_HEAP_CHUNK_FREE:
		return "free";
	case K_HEAP_CHUNK_CACHED:
		return "cached";
	case K_HEAP_CHUNK_METADATA:
		break;
	}
	return "metadata";
}

static void hs_svg_text(FILE *f, double x, double y, const char *anchor, const char *style,
			const char *text)
{
	const char *p;

	fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" %s>", x, y, anchor, style);
	for (p = text; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*p, f);
		}
	}
	fputs("</text>\n", f);
}

static void hs_svg_swatch(FILE *f, double x, double y, const char *colour, const char *label)
{
	fprintf(f,
		"<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"12\" fill=\"%s\" "
		"stroke=\"#333333\" stroke-width=\"0.5\"/>\n",
		x, y - 10, colour);
	hs_svg_text(f, x + 16, y, "start", "font-size=\"11\"", label);
}

static double hs_svg_legend(FILE *f, const struct hs_result *res, double y)
{
	const struct hs_heap_map *map = &res->map;
	char label[32];
	double x = HS_SVG_MAP_X;
	int cpu;

	hs_svg_swatch(f, x, y, hs_state_colour(K_HEAP_CHUNK_USED, -1), "used");
	x += 70;
	hs_svg_swatch(f, x, y, hs_state_colour(K_HEAP_CHUNK_FREE, -1), "free");
	x += 70;
	hs_svg_swatch(f, x, y, hs_state_colour(K_HEAP_CHUNK_METADATA, -1), "metadata");
	x += 95;
	if (map->count > HS_SVG_MAX_CHUNKS) {
		hs_svg_swatch(f, x, y, HS_SVG_HOLES_COLOUR, "used, with free holes");
		x += 150;
	}
	for (cpu = 0; cpu <= map->max_cpu && cpu < (int)HS_CACHED_COLOURS; cpu++) {
		snprintf(label, sizeof(label), "cached, CPU %d", cpu);
		hs_svg_swatch(f, x, y, hs_state_colour(K_HEAP_CHUNK_CACHED, cpu), label);
		x += 110;
	}
	if (map->has_depot) {
		hs_svg_swatch(f, x, y, HS_DEPOT_COLOUR, "cached, depot");
		x += 110;
	}
	if (map->max_cpu >= (int)HS_CACHED_COLOURS) {
		hs_svg_text(f, x, y, "start", "font-size=\"11\"", "(colours repeat every 8 CPUs)");
	}
	return y + 12;
}

static void hs_svg_row_labels(FILE *f, size_t row_bytes)
{
	char label[48], size[24];
	unsigned int row;

	for (row = 0; row < HS_SVG_ROWS; row += 8) {
		hs_format_bytes((uint64_t)row * row_bytes, size, sizeof(size));
		snprintf(label, sizeof(label), "+%s", size);
		hs_svg_text(f, HS_SVG_MAP_X - 6,
			    HS_SVG_MAP_Y + row * (HS_SVG_ROW_H + HS_SVG_ROW_GAP) + HS_SVG_ROW_H,
			    "end", "font-size=\"9\" fill=\"#444444\"", label);
	}
}

static void hs_svg_rect(FILE *f, double x, double y, double w, const char *state_name,
			const char *colour, const char *tooltip)
{
	fprintf(f,
		"<rect class=\"chunk %s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
		"fill=\"%s\"",
		state_name, x, y, w, HS_SVG_ROW_H, colour);
	if (tooltip != NULL) {
		fprintf(f, "><title>%s</title></rect>\n", tooltip);
	} else {
		fputs("/>\n", f);
	}
}

/* Draws the byte range [start, end) split across rows. */
static void hs_svg_span(FILE *f, size_t row_bytes, size_t start, size_t end, const char *name,
			const char *colour, const char *tooltip)
{
	size_t row, row_start, from, to;

	while (start < end) {
		row = start / row_bytes;
		if (row >= HS_SVG_ROWS) {
			return;
		}
		row_start = row * row_bytes;
		from = start - row_start;
		to = end - row_start < row_bytes ? end - row_start : row_bytes;
		hs_svg_rect(f, HS_SVG_MAP_X + HS_SVG_MAP_W * (double)from / (double)row_bytes,
			    HS_SVG_MAP_Y + (double)row * (HS_SVG_ROW_H + HS_SVG_ROW_GAP),
			    HS_SVG_MAP_W * (double)(to - from) / (double)row_bytes, name, colour,
			    tooltip);
		start = row_start + to;
	}
}

static void hs_svg_chunks(FILE *f, const struct hs_heap_map *map, size_t row_bytes)
{
	char tooltip[96];
	bool tips = map->count <= HS_SVG_TOOLTIP_MAX;
	size_t i;

	fputs("<g stroke=\"#ffffff\" stroke-width=\"0.2\">\n", f);
	for (i = 0; i < map->count; i++) {
		const struct hs_chunk *c = &map->chunks[i];

		if (tips) {
			snprintf(tooltip, sizeof(tooltip), "+0x%zx, %zu bytes, %s", c->offset,
				 c->bytes, hs_state_name(c->state));
			if (c->state == K_HEAP_CHUNK_CACHED) {
				size_t used = strlen(tooltip);

				if (c->cpu == K_HEAP_WALK_DEPOT) {
					snprintf(tooltip + used, sizeof(tooltip) - used,
						 " in the depot");
				} else {
					snprintf(tooltip + used, sizeof(tooltip) - used,
						 " on CPU %d", c->cpu);
				}
			}
		}
		hs_svg_span(f, row_bytes, c->offset, c->offset + c->bytes, hs_state_name(c->state),
			    hs_state_colour(c->state, c->cpu), tips ? tooltip : NULL);
	}
	fputs("</g>\n", f);
}

struct hs_svg_cell {
	size_t bytes[HS_CHUNK_STATES];
	int cached_cpu;
};

/* A used cell with at least this share of free bytes is drawn as "used, with holes". */
#define HS_SVG_HOLES_SHARE 8

static enum k_heap_chunk_state hs_cell_state(const struct hs_svg_cell *cell)
{
	enum k_heap_chunk_state best = K_HEAP_CHUNK_METADATA;
	unsigned int s;

	for (s = 0; s < HS_CHUNK_STATES; s++) {
		if (cell->bytes[s] > cell->bytes[best]) {
			best = (enum k_heap_chunk_state)s;
		}
	}
	return best;
}

static bool hs_cell_holey(const struct hs_svg_cell *cell)
{
	size_t total = 0;
	unsigned int s;

	for (s = 0; s < HS_CHUNK_STATES; s++) {
		total += cell->bytes[s];
	}
	return hs_cell_state(cell) == K_HEAP_CHUNK_USED &&
	       cell->bytes[K_HEAP_CHUNK_FREE] * HS_SVG_HOLES_SHARE >= total;
}

/*
 * Too many chunks to draw singly: colour fixed-size cells by their majority
 * state; used cells with free holes in them get a lighter shade of their own.
 */
static int hs_svg_cells(FILE *f, const struct hs_heap_map *map, size_t row_bytes)
{
	size_t cell_bytes = (row_bytes + HS_SVG_CELLS - 1) / HS_SVG_CELLS;
	size_t ncells = HS_SVG_ROWS * (size_t)HS_SVG_CELLS, i, cell, from, to, run;
	struct hs_svg_cell *cells = calloc(ncells, sizeof(*cells));
	enum k_heap_chunk_state state;
	int cpu;

	if (cells == NULL) {
		return -1;
	}
	for (i = 0; i < map->count; i++) {
		const struct hs_chunk *c = &map->chunks[i];

		for (from = c->offset; from < c->offset + c->bytes; from = to) {
			size_t row = from / row_bytes, in_row = from % row_bytes;

			cell = row * HS_SVG_CELLS + in_row / cell_bytes;
			to = row * row_bytes + (in_row / cell_bytes + 1) * cell_bytes;
			if (to > (row + 1) * row_bytes) {
				to = (row + 1) * row_bytes;
			}
			if (to > c->offset + c->bytes) {
				to = c->offset + c->bytes;
			}
			if (cell >= ncells || (unsigned int)c->state >= HS_CHUNK_STATES) {
				break;
			}
			cells[cell].bytes[c->state] += to - from;
			if (c->state == K_HEAP_CHUNK_CACHED) {
				cells[cell].cached_cpu = c->cpu;
			}
		}
	}
	fputs("<g>\n", f);
	for (i = 0; i < ncells; i = run) {
		size_t row = i / HS_SVG_CELLS, row_end = (row + 1) * row_bytes;

		state = hs_cell_state(&cells[i]);
		cpu = cells[i].cached_cpu;
		for (run = i + 1; run < ncells && run % HS_SVG_CELLS != 0 &&
				  hs_cell_state(&cells[run]) == state &&
				  hs_cell_holey(&cells[run]) == hs_cell_holey(&cells[i]) &&
				  (state != K_HEAP_CHUNK_CACHED || cells[run].cached_cpu == cpu);
		     run++) {
		}
		if (cells[i].bytes[state] == 0) {
			continue;
		}
		from = row * row_bytes + (i % HS_SVG_CELLS) * cell_bytes;
		to = row * row_bytes + (run - row * HS_SVG_CELLS) * cell_bytes;
		if (hs_cell_holey(&cells[i])) {
			hs_svg_span(f, row_bytes, from, to < row_end ? to : row_end, "used holes",
				    HS_SVG_HOLES_COLOUR, NULL);
		} else {
			hs_svg_span(f, row_bytes, from, to < row_end ? to : row_end,
				    hs_state_name(state), hs_state_colour(state, cpu), NULL);
		}
	}
	fputs("</g>\n", f);
	free(cells);
	return 0;
}

struct hs_series {
	const char *label;
	const char *colour;
	/* Value of sample i. */
	double (*value)(const struct hs_sample *s, const struct hs_result *res);
};

static double hs_v_ops(const struct hs_sample *s, const struct hs_result *res)
{
	(void)res;
	return s->ops_per_s;
}

static double hs_v_used(const struct hs_sample *s, const struct hs_result *res)
{
	return 100.0 * (double)s->allocated_bytes / (double)res->heap_bytes;
}

static double hs_v_cached(const struct hs_sample *s, const struct hs_result *res)
{
	return 100.0 * (double)s->cached_bytes / (double)res->heap_bytes;
}

static double hs_v_waiters(const struct hs_sample *s, const struct hs_result *res)
{
	(void)res;
	return s->waiters;
}

static double hs_v_alloc50(const struct hs_sample *s, const struct hs_result *res)
{
	(void)res;
	return (double)s->alloc_p50_ns;
}

static double hs_v_alloc99(const struct hs_sample *s, const struct hs_result *res)
{
	(void)res;
	return (double)s->alloc_p99_ns;
}

static double hs_v_free99(const struct hs_sample *s, const struct hs_result *res)
{
	(void)res;
	return (double)s->free_p99_ns;
}

struct hs_panel {
	const char *title;
	const char *unit;
	bool log_scale;
	/* Fixed top of the axis, or 0 to fit the data. */
	double fixed_max;
	const struct hs_series *series;
	unsigned int nseries;
};

static double hs_panel_y(const struct hs_panel *p, double v, double lo, double hi, double y,
			 double h)
{
	double frac;

	if (p->log_scale) {
		v = v < lo ? lo : v;
		frac = (log10(v) - log10(lo)) / (log10(hi) - log10(lo));
	} else {
		frac = (v - lo) / (hi - lo);
	}
	frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
	return y + h - frac * h;
}

static void hs_svg_axis_label(FILE *f, const struct hs_panel *p, double value, double x, double y)
{
	char label[32];

	if (strcmp(p->unit, "ns") == 0) {
		hs_format_ns((uint64_t)value, label, sizeof(label));
	} else if (value >= 1e6) {
		snprintf(label, sizeof(label), "%.1fM%s", value / 1e6, p->unit);
	} else if (value >= 1e3) {
		snprintf(label, sizeof(label), "%.1fK%s", value / 1e3, p->unit);
	} else {
		snprintf(label, sizeof(label), "%.0f%s", value, p->unit);
	}
	hs_svg_text(f, x, y, "end", "font-size=\"9\" fill=\"#444444\"", label);
}

/*
 * Draws one series as a polyline. On a log scale a zero means the interval
 * saw no such operation: the line breaks there instead of diving to the axis.
 */
static void hs_svg_series(FILE *f, const struct hs_result *res, const struct hs_panel *p,
			  const struct hs_series *series, double lo, double hi, double y)
{
	double t_end;
	bool open = false;
	double v;
	size_t i;

	if (res->nsamples == 0) {
		return;
	}
	t_end = res->samples[res->nsamples - 1].t > 0 ? res->samples[res->nsamples - 1].t : 1.0;
	for (i = 0; i < res->nsamples; i++) {
		v = series->value(&res->samples[i], res);
		if (p->log_scale && v <= 0) {
			if (open) {
				fputs("\"/>\n", f);
				open = false;
			}
			continue;
		}
		if (!open) {
			fprintf(f,
				"<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
				"points=\"",
				series->colour);
		}
		fprintf(f, "%s%.2f,%.2f", open ? " " : "",
			HS_SVG_MAP_X + HS_SVG_MAP_W * res->samples[i].t / t_end,
			hs_panel_y(p, v, lo, hi, y, HS_SVG_PANEL_H));
		open = true;
	}
	if (open) {
		fputs("\"/>\n", f);
	}
}

static void hs_svg_panel(FILE *f, const struct hs_result *res, const struct hs_panel *p, double y)
{
	double x = HS_SVG_MAP_X, w = HS_SVG_MAP_W, h = HS_SVG_PANEL_H;
	double t_end = res->nsamples ? res->samples[res->nsamples - 1].t : 1.0;
	double lo = p->log_scale ? 10.0 : 0.0, hi = p->fixed_max, v, lx;
	char label[48];
	unsigned int s;
	size_t i;

	if (t_end <= 0) {
		t_end = 1.0;
	}
	for (s = 0; p->fixed_max == 0 && s < p->nseries; s++) {
		for (i = 0; i < res->nsamples; i++) {
			v = p->series[s].value(&res->samples[i], res);
			hi = v > hi ? v : hi;
		}
	}
	if (p->fixed_max == 0) {
		hi *= 1.1;
	}
	if (hi <= lo * 1.5) {
		hi = p->log_scale ? lo * 100 : 1.0;
	}
	hs_svg_text(f, x, y - 8, "start", "font-size=\"12\" font-weight=\"bold\"", p->title);
	fprintf(f,
		"<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fafafa\" "
		"stroke=\"#999999\" stroke-width=\"0.5\"/>\n",
		x, y, w, h);
	hs_svg_axis_label(f, p, hi, x - 4, y + 8);
	hs_svg_axis_label(f, p, lo, x - 4, y + h);
	if (p->log_scale) {
		hs_svg_axis_label(f, p, sqrt(lo * hi), x - 4, y + h / 2 + 4);
	}
	for (i = 0; i <= 4; i++) {
		snprintf(label, sizeof(label), "%.1fs", t_end * (double)i / 4);
		hs_svg_text(f, x + w * (double)i / 4, y + h + 12,
			    i == 0   ? "start"
			    : i == 4 ? "end"
				     : "middle",
			    "font-size=\"9\" fill=\"#444444\"", label);
	}
	for (s = 0, lx = x + w; s < p->nseries; s++) {
		const struct hs_series *series = &p->series[p->nseries - 1 - s];

		hs_svg_text(f, lx, y - 8, "end", "font-size=\"10\"", series->label);
		lx -= 10.0 + 6.5 * (double)strlen(series->label);
		fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"10\" height=\"3\" fill=\"%s\"/>\n",
			lx, y - 12, series->colour);
		lx -= 12;
	}
	for (s = 0; s < p->nseries; s++) {
		hs_svg_series(f, res, p, &p->series[s], lo, hi, y);
	}
}

static const struct hs_series hs_throughput_series[] = {
    {"ops/s, all threads", "#3b6fb6", hs_v_ops},
};

static const struct hs_series hs_use_series[] = {
    {"% held by users", "#3b6fb6", hs_v_used},
    {"% cached", "#f28e2b", hs_v_cached},
};

static const struct hs_series hs_waiter_series[] = {
    {"threads blocked", "#e15759", hs_v_waiters},
};

static const struct hs_series hs_latency_series[] = {
    {"alloc p50", "#59a14f", hs_v_alloc50},
    {"alloc p99", "#3b6fb6", hs_v_alloc99},
    {"free p99", "#e15759", hs_v_free99},
};

static const struct hs_panel hs_panels[] = {
    {"Throughput", "", false, 0, hs_throughput_series, 1},
    {"Heap use (% of heap)", "%", false, 100.0, hs_use_series, 2},
    {"Blocked threads (k_heap_waiter_count)", "", false, 0, hs_waiter_series, 1},
    {"Latency per interval (log scale)", "ns", true, 0, hs_latency_series, 3},
};

#define HS_PANELS (sizeof(hs_panels) / sizeof(hs_panels[0]))

int hs_svg_write(FILE *f, const struct hs_result *res)
{
	const struct hs_heap_map *map = &res->map;
	size_t row_bytes = (map->region_bytes + HS_SVG_ROWS - 1) / HS_SVG_ROWS;
	double map_h = HS_SVG_ROWS * (HS_SVG_ROW_H + HS_SVG_ROW_GAP);
	double charts_y = HS_SVG_MAP_Y + map_h + 50;
	double height = charts_y + HS_PANELS * (HS_SVG_PANEL_H + HS_SVG_PANEL_GAP) + 10;
	char text[256], heap[32];
	unsigned int i;

	if (row_bytes == 0) {
		row_bytes = 1;
	}
	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
		HS_SVG_WIDTH, height, HS_SVG_WIDTH, height);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n",
		HS_SVG_WIDTH, height);
	hs_format_bytes(res->heap_bytes, heap, sizeof(heap));
	snprintf(text, sizeof(text),
		 "heapstress %s: seed %llu, heap %s, %u workers + %u storm threads, %.1f s",
		 res->passed ? "PASS" : "FAIL", (unsigned long long)res->seed, heap, res->workers,
		 res->storm_threads, res->elapsed_s);
	hs_svg_text(f, 20, 24, "start", "font-size=\"15\" font-weight=\"bold\"", text);
	if (map->available) {
		snprintf(
		    text, sizeof(text),
		    "Heap map when the run stopped: %zu chunks, %zu free (largest %zu bytes); "
		    "one row = %zu bytes%s",
		    map->count, map->state_chunks[K_HEAP_CHUNK_FREE], map->largest_free, row_bytes,
		    map->count > HS_SVG_MAX_CHUNKS ? ", drawn in cells by majority state" : "");
	} else {
		snprintf(text, sizeof(text), "Heap map %s", map->unavailable_reason);
	}
	hs_svg_text(f, 20, 46, "start", "font-size=\"12\"", text);
	hs_svg_legend(f, res, 70);
	hs_svg_row_labels(f, row_bytes);
	if (map->available) {
		if (map->count <= HS_SVG_MAX_CHUNKS) {
			hs_svg_chunks(f, map, row_bytes);
		} else if (hs_svg_cells(f, map, row_bytes) != 0) {
			return -1;
		}
	}
	for (i = 0; i < HS_PANELS; i++) {
		hs_svg_panel(f, res, &hs_panels[i],
			     charts_y + (double)i * (HS_SVG_PANEL_H + HS_SVG_PANEL_GAP));
	}
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}
