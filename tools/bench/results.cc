/*
 * Results tables: printing, CSV round trip and median merging.
 *
 * CSV lines are either
 *   table,<name>,<decimals>,<title to end of line>
 *   cell,<table>,<row>,<column>,<value>
 * Names never contain commas; titles may.
 */
#include "tools/bench/results.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace
{

std::vector<std::string> split(const std::string &line, size_t max_fields)
{
	std::vector<std::string> fields;
	size_t start = 0;

	while (fields.size() + 1 < max_fields) {
		size_t comma = line.find(',', start);
		if (comma == std::string::npos) {
			break;
		}
		fields.push_back(line.substr(start, comma - start));
		start = comma + 1;
	}
	fields.push_back(line.substr(start));
	return fields;
}

void remember(std::vector<std::string> *order, const std::string &name)
{
	if (std::find(order->begin(), order->end(), name) == order->end()) {
		order->push_back(name);
	}
}

} // namespace

Results::Table *Results::find(const std::string &table)
{
	for (auto &entry : tables_) {
		if (entry.first == table) {
			return &entry.second;
		}
	}
	return nullptr;
}

const Results::Table *Results::find(const std::string &table) const
{
	for (const auto &entry : tables_) {
		if (entry.first == table) {
			return &entry.second;
		}
	}
	return nullptr;
}

void Results::add_table(const std::string &table, const std::string &title, int decimals)
{
	Table *t = find(table);

	if (t == nullptr) {
		tables_.emplace_back(table, Table());
		t = &tables_.back().second;
	}
	t->title = title;
	t->decimals = decimals;
}

void Results::set(const std::string &table, const std::string &row, const std::string &col,
		  double value)
{
	Table *t = find(table);

	if (t == nullptr) {
		add_table(table, table, 2);
		t = find(table);
	}
	remember(&t->rows, row);
	remember(&t->cols, col);
	t->cells[{row, col}] = value;
}

bool Results::get(const std::string &table, const std::string &row, const std::string &col,
		  double *value) const
{
	const Table *t = find(table);

	if (t == nullptr) {
		return false;
	}
	auto it = t->cells.find({row, col});
	if (it == t->cells.end()) {
		return false;
	}
	*value = it->second;
	return true;
}

void Results::append(const Results &other)
{
	for (const auto &entry : other.tables_) {
		const Table &t = entry.second;

		add_table(entry.first, t.title, t.decimals);
		for (const std::string &row : t.rows) {
			for (const std::string &col : t.cols) {
				auto it = t.cells.find({row, col});
				if (it != t.cells.end()) {
					set(entry.first, row, col, it->second);
				}
			}
		}
	}
}

void Results::print(FILE *out) const
{
	for (const auto &entry : tables_) {
		const Table &t = entry.second;
		size_t row_width = 4;
		std::vector<size_t> widths;

		if (t.cells.empty()) {
			continue;
		}
		for (const std::string &row : t.rows) {
			row_width = std::max(row_width, row.size());
		}
		for (const std::string &col : t.cols) {
			widths.push_back(std::max<size_t>(col.size(), 9));
		}
		std::fprintf(out, "\n%s\n%-*s", t.title.c_str(), (int)row_width, "");
		for (size_t c = 0; c < t.cols.size(); c++) {
			std::fprintf(out, "  %*s", (int)widths[c], t.cols[c].c_str());
		}
		std::fprintf(out, "\n");
		for (const std::string &row : t.rows) {
			std::fprintf(out, "%-*s", (int)row_width, row.c_str());
			for (size_t c = 0; c < t.cols.size(); c++) {
				auto it = t.cells.find({row, t.cols[c]});
				if (it == t.cells.end()) {
					std::fprintf(out, "  %*s", (int)widths[c], "-");
				} else {
					std::fprintf(out, "  %*.*f", (int)widths[c], t.decimals,
						     it->second);
				}
			}
			std::fprintf(out, "\n");
		}
	}
}

void Results::write_csv(FILE *out) const
{
	for (const auto &entry : tables_) {
		const Table &t = entry.second;

		std::fprintf(out, "table,%s,%d,%s\n", entry.first.c_str(), t.decimals,
			     t.title.c_str());
		for (const std::string &row : t.rows) {
			for (const std::string &col : t.cols) {
				auto it = t.cells.find({row, col});
				if (it != t.cells.end()) {
					std::fprintf(out, "cell,%s,%s,%s,%.17g\n",
						     entry.first.c_str(), row.c_str(), col.c_str(),
						     it->second);
				}
			}
		}
	}
}

bool Results::read_csv(const std::string &path, std::string *error)
{
	std::ifstream in(path);
	std::string line;
	int line_no = 0;

	if (!in) {
		*error = "cannot open " + path;
		return false;
	}
	while (std::getline(in, line)) {
		line_no++;
		if (line.empty()) {
			continue;
		}
		if (line.compare(0, 6, "table,") == 0) {
			std::vector<std::string> f = split(line, 4);
			if (f.size() == 4) {
				add_table(f[1], f[3], std::atoi(f[2].c_str()));
				continue;
			}
		} else if (line.compare(0, 5, "cell,") == 0) {
			std::vector<std::string> f = split(line, 5);
			char *end = nullptr;
			double value = f.size() == 5 ? std::strtod(f[4].c_str(), &end) : 0;
			if (f.size() == 5 && end != f[4].c_str() && *end == '\0') {
				set(f[1], f[2], f[3], value);
				continue;
			}
		}
		*error = path + ":" + std::to_string(line_no) + ": malformed line: " + line;
		return false;
	}
	return true;
}

double Results::median(std::vector<double> values)
{
	size_t mid;

	if (values.empty()) {
		return std::nan("");
	}
	std::sort(values.begin(), values.end());
	mid = values.size() / 2;
	return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

Results Results::merge_median(const std::vector<Results> &runs)
{
	Results merged;

	for (const Results &run : runs) {
		for (const auto &entry : run.tables_) {
			const Table &t = entry.second;

			merged.add_table(entry.first, t.title, t.decimals);
			for (const std::string &row : t.rows) {
				for (const std::string &col : t.cols) {
					std::vector<double> values;
					double v;

					for (const Results &other : runs) {
						if (other.get(entry.first, row, col, &v)) {
							values.push_back(v);
						}
					}
					if (!values.empty()) {
						merged.set(entry.first, row, col, median(values));
					}
				}
			}
		}
	}
	return merged;
}
