/*
 * Benchmark figures as named tables of (row, column) -> value, with the text
 * form the binary prints and the CSV form that lets several runs be merged.
 *
 * Invariants: rows and columns keep the order in which they were first set,
 * so printed tables read in the order the run measured them; a cell that was
 * never set prints as "-". Merging takes, cell by cell, the median over the
 * runs that have it, ratios included (a merged ratio is the median of the
 * per-run ratios, each computed inside one run).
 */
#ifndef KHEAP_TOOLS_BENCH_RESULTS_H
#define KHEAP_TOOLS_BENCH_RESULTS_H

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

class Results
{
      public:
	/* Declares a table; `decimals` is how many digits print after the point. */
	void add_table(const std::string &table, const std::string &title, int decimals);
	void set(const std::string &table, const std::string &row, const std::string &col,
		 double value);
	bool get(const std::string &table, const std::string &row, const std::string &col,
		 double *value) const;
	/* Adds every table of `other` after this one's (cells of a table both
	 * hold are overwritten by `other`'s).
	 */
	void append(const Results &other);

	void print(FILE *out) const;
	void write_csv(FILE *out) const;
	/* Adds what `path` holds; false (with *error set) on a malformed file. */
	bool read_csv(const std::string &path, std::string *error);

	static double median(std::vector<double> values);
	static Results merge_median(const std::vector<Results> &runs);

      private:
	struct Table {
		std::string title;
		int decimals = 2;
		std::vector<std::string> rows;
		std::vector<std::string> cols;
		std::map<std::pair<std::string, std::string>, double> cells;
	};
	Table *find(const std::string &table);
	const Table *find(const std::string &table) const;

	std::vector<std::pair<std::string, Table>> tables_;
};

#endif
