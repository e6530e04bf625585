#pragma once
// Which allocator this build runs on, for the start-up log (daemon/allocator.cpp).
#include <string>

namespace accountsd {

// "jemalloc, thp:always", or the C library's malloc in a sanitizer build.
std::string allocator_summary();

}  // namespace accountsd
