#pragma once
// Argon2's work area, kept by each password worker from one hash to the next.
//
// libsodium maps Argon2id's work area (`password_hash.memlimit_kib`, 64 MiB by default) afresh for
// every hash and unmaps it after, so every hash first takes a page fault for each of its 16,384
// pages, and every unmapping makes the kernel interrupt the daemon's other threads to flush their
// TLBs. On a virtual machine whose page faults are slow that is most of a login's cost: one
// verification took 145-154 ms with a fresh area and 32-37 ms with a kept one (docs/BENCHMARKS.md,
// "Argon2's work area kept").
//
// libsodium has no allocator hook, so the daemon links it statically and wraps `mmap` and `munmap`
// for the code linked into the executable (`-Wl,--wrap=mmap,--wrap=munmap`, CMakeLists.txt). The
// wrappers act only inside a `Scope` on a thread that called `keep_on_this_thread`, i.e. around one
// job of a password worker; everywhere else they call the C library's functions unchanged. Inside,
// the first anonymous mapping of at most the kept size gets the thread's area (mapped at its first
// use), and unmapping it wipes what Argon2 left there (derived from the password: with one pass
// its first blocks would let a guess be tested at the cost of a plain hash) instead of returning it
// to the kernel. A larger mapping (an imported hash's own parameters) is mapped and unmapped as
// before.
#include <cstddef>
#include <cstdint>
#include <span>

namespace accounts::argon2_area {

// The calling thread keeps one work area of `bytes` (rounded up to whole pages) from its first use
// until the thread ends. Call once, at the start of a worker thread.
void keep_on_this_thread(size_t bytes);

// Around one job: Argon2's mapping inside it is served from the thread's kept area, if it keeps one.
class Scope {
 public:
  Scope();
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

// Since the start, process-wide: areas mapped for keeping, and hashes served from a kept area.
struct Counts {
  uint64_t mapped = 0;
  uint64_t reused = 0;
};
Counts counts();

// The calling thread's kept area (empty before its first use), for tests: all zero between jobs.
std::span<const std::byte> kept_area_of_this_thread();

}  // namespace accounts::argon2_area
