// The daemon's memory allocator. Release builds link jemalloc (Debian's libjemalloc2) and start it
// with the settings below; sanitizer builds keep glibc's malloc, which the sanitizers replace.
//
// Why: a read is a chain of dependent loads into a heap of a gigabyte or more (an index slot, a
// session, an account), and with 4 KiB pages each load also misses the TLB and waits for a page
// walk. jemalloc backs its extents with transparent huge pages when told to (`thp:always`, which
// madvises them; the kernel's `transparent_hugepage/enabled` must be `madvise` or `always`), so a
// page walk becomes rare; glibc can only do that for its main arena (docs/BENCHMARKS.md, "Huge
// pages through jemalloc").
//
// Freed memory is kept for reuse, never handed back (`dirty_decay_ms:-1`): handing back part of a
// huge page splits it into small ones. A daemon that grew by REGISTER while serving, freeing
// requests' temporaries all along, kept only 254 of 433 MiB in huge pages with jemalloc's default
// decay of 10 s and served FIND at 0.46-0.74x the rate of the same accounts warm-loaded; with it
// kept, 401-412 of 437-440 MiB and 0.82-1.13x (docs/BENCHMARKS.md, "Freed memory kept in huge
// pages"). The cost: after a mass deletion the process keeps its peak size until new accounts
// fill it.
//
// An operator overrides these settings with MALLOC_CONF, e.g. MALLOC_CONF=thp:never or
// MALLOC_CONF=dirty_decay_ms:10000 (jemalloc reads the environment after this string).
#include "daemon/allocator.hpp"

#ifdef ACCOUNTSD_JEMALLOC
#include <jemalloc/jemalloc.h>

// Read by jemalloc at its first allocation: the symbol must be in the executable, not in a static
// library that nothing references.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "thp:always,metadata_thp:auto,dirty_decay_ms:-1";
}
#endif

namespace accountsd {

std::string allocator_summary() {
#ifdef ACCOUNTSD_JEMALLOC
  const char* thp = nullptr;
  size_t size = sizeof thp;
  if (mallctl("opt.thp", &thp, &size, nullptr, 0) != 0 || thp == nullptr) return "jemalloc";
  std::string summary = std::string("jemalloc, thp:") + thp;
  ssize_t decay = 0;
  size = sizeof decay;
  if (mallctl("opt.dirty_decay_ms", &decay, &size, nullptr, 0) == 0)
    summary += ", dirty_decay_ms:" + std::to_string(decay);
  return summary;
#else
  return "the C library's malloc (or a sanitizer's)";
#endif
}

}  // namespace accountsd
