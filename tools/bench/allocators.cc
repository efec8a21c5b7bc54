/*
 * Loading and proving the allocators under comparison.
 *
 * A library contender is a table of candidate symbol names; the first name
 * that dlsym finds on the library's own handle AND that dladdr places inside
 * that very library is used. dlsym on a handle also searches the library's
 * dependencies, so without the dladdr check a library that does not export
 * plain malloc would silently hand back glibc's.
 */
#include "tools/bench/allocators.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <kheap/k_heap.h>

namespace
{

struct MallocApi {
	void *(*malloc_fn)(size_t);
	void (*free_fn)(void *);
	size_t (*usable_fn)(void *);
	int (*owns_fn)(const void *);
};

struct LibrarySpec {
	const char *name;
	const char *soname;
	std::vector<const char *> malloc_names;
	std::vector<const char *> free_names;
	std::vector<const char *> usable_names;
	/* Optional "is this pointer mine" query, for the distinctness proof. */
	std::vector<const char *> owns_names;
};

/*
 * libkheap_malloc.so, the C allocation API on k_heap (malloc/): the same
 * workloads through malloc/free, as a program would run with LD_PRELOAD.
 * Found in the binary's runfiles, or at $KHEAP_MALLOC_SO.
 */
const char *kheap_malloc_path()
{
	static std::string path = [] {
		if (const char *env = getenv("KHEAP_MALLOC_SO"))
			return std::string(env);
		char exe[4096];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			return std::string("libkheap_malloc.so");
		exe[n] = '\0';
		return std::string(exe) + ".runfiles/kheap/malloc/libkheap_malloc.so";
	}();
	return path.c_str();
}

const std::vector<LibrarySpec> &library_specs()
{
	static const std::vector<LibrarySpec> specs = {
	    {"glibc",
	     "libc.so.6",
	     {"__libc_malloc", "malloc"},
	     {"__libc_free", "free"},
	     {"malloc_usable_size"},
	     {}},
	    {"jemalloc",
	     "libjemalloc.so.2",
	     {"je_malloc", "malloc"},
	     {"je_free", "free"},
	     {"je_malloc_usable_size", "malloc_usable_size"},
	     {}},
	    {"tcmalloc",
	     "libtcmalloc_minimal.so.4",
	     {"tc_malloc", "malloc"},
	     {"tc_free", "free"},
	     {"tc_malloc_size", "malloc_usable_size"},
	     {}},
	    {"mimalloc",
	     "libmimalloc.so.2",
	     {"mi_malloc", "malloc"},
	     {"mi_free", "free"},
	     {"mi_usable_size", "malloc_usable_size"},
	     {"mi_is_in_heap_region"}},
	    {"kheap-malloc", kheap_malloc_path(), {"malloc"}, {"free"}, {"malloc_usable_size"}, {}},
	};
	return specs;
}

/* The kheap rows: the same k_heap with per-CPU caches on, and off. */
struct KheapRow {
	const char *name;
	unsigned cache_percent;
};

const KheapRow kKheapRows[] = {
    {"kheap", KHEAP_DEFAULT_CACHE_PERCENT},
    {"kheap-nocache", 0},
};

void *api_alloc(void *ctx, size_t bytes)
{
	return static_cast<MallocApi *>(ctx)->malloc_fn(bytes);
}

void api_free(void *ctx, void *ptr)
{
	static_cast<MallocApi *>(ctx)->free_fn(ptr);
}

size_t api_usable_size(void *ctx, void *ptr)
{
	return static_cast<MallocApi *>(ctx)->usable_fn(ptr);
}

bool api_owns(void *ctx, const void *ptr)
{
	return static_cast<MallocApi *>(ctx)->owns_fn(ptr) != 0;
}

void *kheap_alloc(void *ctx, size_t bytes)
{
	return k_heap_alloc(static_cast<struct k_heap *>(ctx), bytes, K_NO_WAIT);
}

void kheap_free(void *ctx, void *ptr)
{
	k_heap_free(static_cast<struct k_heap *>(ctx), ptr);
}

size_t kheap_usable_size(void *ctx, void *ptr)
{
	return k_heap_usable_size(static_cast<struct k_heap *>(ctx), ptr);
}

bool kheap_owns(void *ctx, const void *ptr)
{
	const struct k_heap *h = static_cast<struct k_heap *>(ctx);
	const char *base = static_cast<const char *>(h->heap.init_mem);
	const char *p = static_cast<const char *>(ptr);

	return p >= base && p < base + h->heap.init_bytes;
}

/*
 * Resolves the first of `names` that lives in the library loaded as
 * `library_path` and appends its name to *used. Returns null and appends the
 * tried names to *why otherwise.
 */
void *resolve_in(void *handle, const char *library_path, const std::vector<const char *> &names,
		 std::string *used, std::string *why)
{
	for (const char *name : names) {
		void *sym = dlsym(handle, name);
		Dl_info info = {};

		if (sym == nullptr) {
			*why += std::string(" ") + name + ": not exported;";
			continue;
		}
		if (dladdr(sym, &info) == 0 || info.dli_fname == nullptr ||
		    std::strcmp(info.dli_fname, library_path) != 0) {
			*why += std::string(" ") + name + ": resolves to " +
				(info.dli_fname ? info.dli_fname : "?") + ";";
			continue;
		}
		*used += used->empty() ? name : std::string("/") + name;
		return sym;
	}
	return nullptr;
}

const char *hardening_name(enum sys_heap_hardening level)
{
	switch (level) {
	case SYS_HEAP_HARDENING_NONE:
		return "NONE";
	case SYS_HEAP_HARDENING_BASIC:
		return "BASIC";
	case SYS_HEAP_HARDENING_MODERATE:
		return "MODERATE";
	case SYS_HEAP_HARDENING_FULL:
		return "FULL";
	case SYS_HEAP_HARDENING_EXTREME:
		return "EXTREME";
	}
	return "unknown";
}

/* Keeps every loaded MallocApi alive (and at a fixed address) for the run. */
std::vector<std::unique_ptr<MallocApi>> &loaded_apis()
{
	static std::vector<std::unique_ptr<MallocApi>> apis;
	return apis;
}

bool load_library(const LibrarySpec &spec, Allocator *out, std::string *why)
{
	void *handle = dlopen(spec.soname, RTLD_LOCAL | RTLD_NOW);
	struct link_map *map = nullptr;

	if (handle == nullptr) {
		const char *err = dlerror();
		*why = std::string("dlopen failed: ") + (err ? err : "unknown error");
		return false;
	}
	if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr ||
	    map->l_name == nullptr) {
		*why = "dlinfo could not name the loaded library";
		return false;
	}

	std::string tried;
	std::string used;
	auto api = std::make_unique<MallocApi>();
	api->malloc_fn = reinterpret_cast<void *(*)(size_t)>(
	    resolve_in(handle, map->l_name, spec.malloc_names, &used, &tried));
	api->free_fn = reinterpret_cast<void (*)(void *)>(
	    resolve_in(handle, map->l_name, spec.free_names, &used, &tried));
	api->usable_fn = reinterpret_cast<size_t (*)(void *)>(
	    resolve_in(handle, map->l_name, spec.usable_names, &used, &tried));
	if (api->malloc_fn == nullptr || api->free_fn == nullptr || api->usable_fn == nullptr) {
		*why = std::string("no usable malloc/free/usable-size in ") + map->l_name + ":" +
		       tried;
		return false;
	}
	if (!spec.owns_names.empty()) {
		std::string ignored;
		api->owns_fn = reinterpret_cast<int (*)(const void *)>(
		    resolve_in(handle, map->l_name, spec.owns_names, &used, &ignored));
	}

	out->name = spec.name;
	out->origin = std::string(map->l_name) + " " + used;
	out->alloc = api_alloc;
	out->free = api_free;
	out->usable_size = api_usable_size;
	out->owns = api->owns_fn ? api_owns : nullptr;
	out->ctx = api.get();
	out->kheap = nullptr;
	loaded_apis().push_back(std::move(api));
	return true;
}

} // namespace

std::unique_ptr<KheapInstance> KheapInstance::create(size_t bytes, unsigned cache_percent,
						     std::string *error)
{
	std::unique_ptr<KheapInstance> inst(new KheapInstance());
	struct k_heap_config config = {};
	int rc;

	inst->heap_ = std::make_unique<struct k_heap>();
	inst->region_ = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (inst->region_ == MAP_FAILED) {
		inst->region_ = nullptr;
		*error = std::string("mmap: ") + std::strerror(errno);
		return nullptr;
	}
	inst->bytes_ = bytes;
	inst->cache_percent_ = cache_percent;
	config.cache_percent = cache_percent;
	rc = k_heap_init_config(inst->heap_.get(), inst->region_, bytes, &config);
	if (rc != 0) {
		*error = "k_heap_init_config returned " + std::to_string(rc);
		return nullptr;
	}
	inst->initialised_ = true;
	return inst;
}

Allocator KheapInstance::as_allocator(const std::string &name) const
{
	Allocator a;

	a.name = name;
	a.origin = "k_heap over " + std::to_string(bytes_ >> 20) +
		   " MiB mmap, cache_percent=" + std::to_string(cache_percent_) +
		   (cache_percent_ == 0 ? " (single lock)" : "") + ", hardening " +
		   hardening_name(sys_heap_get_hardening(&heap_->heap));
	a.alloc = kheap_alloc;
	a.free = kheap_free;
	a.usable_size = kheap_usable_size;
	a.owns = kheap_owns;
	a.ctx = heap_.get();
	a.kheap = heap_.get();
	return a;
}

bool KheapInstance::release()
{
	if (!initialised_) {
		return true;
	}
	if (k_heap_deinit(heap_.get()) != 0) {
		return false;
	}
	initialised_ = false;
	return true;
}

KheapInstance::~KheapInstance()
{
	/* A heap that still holds blocks is leaked rather than unmapped under
	 * its users; the harness reports that case as an error separately.
	 */
	if (region_ != nullptr && release()) {
		munmap(region_, bytes_);
	}
}

bool is_allocator_name(const std::string &name)
{
	for (const KheapRow &row : kKheapRows) {
		if (name == row.name) {
			return true;
		}
	}
	for (const LibrarySpec &spec : library_specs()) {
		if (name == spec.name) {
			return true;
		}
	}
	return false;
}

bool AllocatorChoice::wants(const std::string &name) const
{
	return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<Allocator> load_allocators(const AllocatorChoice &choice, size_t kheap_bytes,
				       std::vector<std::unique_ptr<KheapInstance>> *kheaps,
				       std::vector<std::string> *skipped)
{
	std::vector<Allocator> out;

	for (const KheapRow &row : kKheapRows) {
		std::string error;

		if (!choice.wants(row.name)) {
			continue;
		}
		auto inst = KheapInstance::create(kheap_bytes, row.cache_percent, &error);
		if (!inst) {
			skipped->push_back(std::string(row.name) + ": " + error);
			continue;
		}
		out.push_back(inst->as_allocator(row.name));
		kheaps->push_back(std::move(inst));
	}
	for (const LibrarySpec &spec : library_specs()) {
		Allocator a;
		std::string why;

		if (!choice.wants(spec.name)) {
			continue;
		}
		if (!load_library(spec, &a, &why)) {
			skipped->push_back(std::string(spec.name) + " (" + spec.soname +
					   "): " + why);
			continue;
		}
		out.push_back(a);
	}
	return out;
}

bool verify_distinct(const std::vector<Allocator> &allocators)
{
	const size_t probe_bytes = 100;
	std::vector<void *> blocks(allocators.size(), nullptr);
	std::vector<size_t> usable(allocators.size(), 0);
	bool ok = true;

	for (size_t i = 0; i < allocators.size(); i++) {
		const Allocator &a = allocators[i];

		blocks[i] = a.alloc(a.ctx, probe_bytes);
		if (blocks[i] == nullptr) {
			std::printf("  %-14s FAILED: alloc(%zu) returned NULL\n", a.name.c_str(),
				    probe_bytes);
			ok = false;
			continue;
		}
		usable[i] = a.usable_size(a.ctx, blocks[i]);
		std::memset(blocks[i], 0x5a, probe_bytes);
		std::printf("  %-14s %s\n  %-14s probe block %p, usable size of %zu B: %zu\n",
			    a.name.c_str(), a.origin.c_str(), "", blocks[i], probe_bytes,
			    usable[i]);
		if (usable[i] < probe_bytes) {
			std::printf("  %-14s FAILED: usable size below the request\n",
				    a.name.c_str());
			ok = false;
		}
	}
	/*
	 * An ownership query is only evidence if it recognises the allocator's
	 * own block (mimalloc's does not for addresses outside the range it
	 * maps itself, e.g. under AddressSanitizer).
	 */
	std::vector<bool> asks_ownership(allocators.size(), false);
	for (size_t i = 0; i < allocators.size(); i++) {
		const Allocator &a = allocators[i];

		if (a.owns == nullptr || blocks[i] == nullptr) {
			continue;
		}
		asks_ownership[i] = a.owns(a.ctx, blocks[i]);
		if (!asks_ownership[i]) {
			std::printf("  note: %s does not recognise its own block here; its "
				    "ownership query is not used\n",
				    a.name.c_str());
		}
	}
	for (size_t i = 0; i < allocators.size(); i++) {
		for (size_t j = 0; j < allocators.size(); j++) {
			const char *bi = static_cast<const char *>(blocks[i]);
			const char *bj = static_cast<const char *>(blocks[j]);

			if (i == j || bi == nullptr || bj == nullptr) {
				continue;
			}
			if (i < j && bi < bj + usable[j] && bj < bi + usable[i]) {
				std::printf("  FAILED: blocks of %s and %s overlap\n",
					    allocators[i].name.c_str(), allocators[j].name.c_str());
				ok = false;
			}
			if (asks_ownership[i] && allocators[i].owns(allocators[i].ctx, blocks[j])) {
				std::printf("  FAILED: %s claims the block of %s\n",
					    allocators[i].name.c_str(), allocators[j].name.c_str());
				ok = false;
			}
		}
	}
	for (size_t i = 0; i < allocators.size(); i++) {
		if (blocks[i] != nullptr) {
			allocators[i].free(allocators[i].ctx, blocks[i]);
		}
	}
	return ok;
}

void ensure_static_tls_for_dlopen(char **argv)
{
	static const char kTunable[] = "glibc.rtld.optional_static_tls=65536";
	static const char kMarker[] = "KHEAP_BENCH_TLS_REEXEC";
	const char *current = std::getenv("GLIBC_TUNABLES");
	std::string tunables;

	if (std::getenv(kMarker) != nullptr ||
	    (current != nullptr && std::strstr(current, "glibc.rtld.optional_static_tls"))) {
		return;
	}
	tunables = current ? std::string(current) + ":" + kTunable : std::string(kTunable);
	if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0 || setenv(kMarker, "1", 1) != 0) {
		return;
	}
	execv("/proc/self/exe", argv);
	std::fprintf(stderr,
		     "note: could not re-execute for static TLS (%s); jemalloc may "
		     "fail to load\n",
		     std::strerror(errno));
}
