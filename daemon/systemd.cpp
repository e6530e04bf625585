#include "daemon/systemd.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <stdexcept>

namespace accountsd::systemd {

int inherited_listener() {
  int count = sd_listen_fds(1);
  if (count <= 0) return -1;
  if (count > 1) throw std::runtime_error("socket activation passed " + std::to_string(count) + " sockets; accountsd uses one");
  int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0)
    throw std::runtime_error("socket activation passed a socket that is not a listening TCP socket");
  return fd;
}

void notify_ready(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }
void notify_status(const std::string& status) { sd_notifyf(0, "STATUS=%s", status.c_str()); }
void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }
void notify_watchdog() { sd_notify(0, "WATCHDOG=1"); }

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

}  // namespace accountsd::systemd
