#pragma once
// The service manager's side of the daemon (libsystemd): readiness and status notifications,
// the watchdog, and sockets handed over by socket activation. Every call is harmless when the
// daemon does not run under systemd (no NOTIFY_SOCKET, no LISTEN_FDS).
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace accountsd::systemd {

// The listening sockets systemd passed us, with their FileDescriptorName= (socket activation);
// empty without. Throws if one is not a listening stream socket.
std::vector<std::pair<int, std::string>> inherited_listeners();

void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_stopping();
void notify_watchdog();
// How often to ping the watchdog (half of WatchdogSec), when systemd asks for pings at all.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace accountsd::systemd
