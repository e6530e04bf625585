#pragma once
// Logging to stderr in a form that suits a terminal or journald: under systemd (JOURNAL_STREAM
// set) every line starts with a syslog priority prefix such as <4>, so `journalctl -p warning`
// works; on a terminal lines carry a timestamp and the level, coloured only on a TTY.
#include <string>

namespace accountsd {

void init_logging(const std::string& level);
// False when `level` is not one of trace, debug, info, warn, error, critical, off.
bool set_log_level(const std::string& level);

}  // namespace accountsd
