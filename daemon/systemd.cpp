#include "daemon/systemd.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <stdexcept>

namespace accountsd::systemd {

std::vector<std::pair<int, std::string>> inherited_listeners() {
  char** names = nullptr;
  int count = sd_listen_fds_with_names(1, &names);
  std::vector<std::pair<int, std::string>> sockets;
  for (int i = 0; i < std::max(count, 0); ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    std::string name = names != nullptr && names[i] != nullptr ? names[i] : "";
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
      throw std::runtime_error("socket activation passed a socket that is not a listening stream socket (" + name + ")");
    sockets.emplace_back(fd, name);
  }
  if (names != nullptr) {
    for (int i = 0; i < count; ++i) free(names[i]);
    free(names);
  }
  return sockets;
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
