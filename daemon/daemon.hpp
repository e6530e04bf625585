#pragma once
// Runs accountsd with a checked configuration until SIGTERM or SIGINT; returns the exit status.
#include "daemon/config.hpp"

namespace accountsd {

int run_daemon(const Config& config);

}  // namespace accountsd
