#pragma once
// The service manager's side of the daemon (libsystemd): readiness and status notifications,
// the watchdog, and sockets handed over by socket activation. Every call is harmless when the
// daemon does not run under systemd (no NOTIFY_SOCKET, no LISTEN_FDS).
#include <chrono>
#include <optional>
#include <string>

namespace accountsd::systemd {

// The listening socket systemd passed us (fd 3), or -1. Throws if more than one was passed or
// it is not a listening TCP socket.
int inherited_listener();

void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_stopping();
void notify_watchdog();
// How often to ping the watchdog (half of WatchdogSec), when systemd asks for pings at all.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace accountsd::systemd
