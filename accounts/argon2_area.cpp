#include "accounts/argon2_area.hpp"

#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

// The linker sends the executable's own calls (libsodium's among them) to these two, and __real_*
// to the C library's functions (CMakeLists.txt: --wrap).
extern "C" {
void* __real_mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset);
int __real_munmap(void* addr, size_t length);
void* __wrap_mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset);
int __wrap_munmap(void* addr, size_t length);
}

namespace accounts::argon2_area {
namespace {

std::atomic<uint64_t> mapped_count{0};
std::atomic<uint64_t> reused_count{0};

// Trivial, so that a thread that never keeps an area pays nothing for it in every mmap.
struct Area {
  size_t capacity = 0;        // bytes kept; 0: this thread keeps no area
  std::byte* base = nullptr;  // mapped at the first job that needs it
  size_t lent = 0;            // bytes Argon2 holds now; 0: the area is free
  bool in_scope = false;      // inside a worker's job
};
thread_local Area area;

void wipe_returned() {
  sodium_memzero(area.base, area.lent);
  area.lent = 0;
}

struct Release {
  ~Release() {
    if (area.base) __real_munmap(area.base, area.capacity);
    area = {};
  }
};

bool is_work_area_request(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  return addr == nullptr && fd == -1 && offset == 0 && prot == (PROT_READ | PROT_WRITE) &&
         (flags & (MAP_ANONYMOUS | MAP_PRIVATE | MAP_SHARED | MAP_FIXED)) == (MAP_ANONYMOUS | MAP_PRIVATE) &&
         length != 0 && length <= area.capacity;
}

}  // namespace

void keep_on_this_thread(size_t bytes) {
  static thread_local Release release;  // unmaps the area when the thread ends
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  area.capacity = (bytes + page - 1) / page * page;
}

Scope::Scope() { area.in_scope = true; }

Scope::~Scope() {
  if (area.lent != 0) wipe_returned();  // never happens with libsodium, which unmaps what it maps
  area.in_scope = false;
}

Counts counts() {
  return {mapped_count.load(std::memory_order_relaxed), reused_count.load(std::memory_order_relaxed)};
}

std::span<const std::byte> kept_area_of_this_thread() {
  return {area.base, area.base ? area.capacity : 0};
}

}  // namespace accounts::argon2_area

using accounts::argon2_area::area;

void* __wrap_mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (area.in_scope && area.lent == 0 && accounts::argon2_area::is_work_area_request(addr, length, prot, flags, fd, offset)) {
    if (!area.base) {
      void* kept = __real_mmap(nullptr, area.capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (kept == MAP_FAILED) return __real_mmap(addr, length, prot, flags, fd, offset);  // as without keeping
      madvise(kept, area.capacity, MADV_DONTDUMP);  // in a core file it would hold what a hash left
      area.base = static_cast<std::byte*>(kept);
      accounts::argon2_area::mapped_count.fetch_add(1, std::memory_order_relaxed);
    } else {
      accounts::argon2_area::reused_count.fetch_add(1, std::memory_order_relaxed);
    }
    area.lent = length;
    return area.base;
  }
  return __real_mmap(addr, length, prot, flags, fd, offset);
}

int __wrap_munmap(void* addr, size_t length) {
  if (area.lent != 0 && addr == area.base) {
    accounts::argon2_area::wipe_returned();
    return 0;
  }
  return __real_munmap(addr, length);
}
