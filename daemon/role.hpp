#pragma once
// This node's role over its database (docs/OPERATIONS.md, "Running a cluster"): primary (the one
// writer; also every single-node daemon) or replica (follows the primary's change log). ROLE,
// STATS, WAIT, the metrics and systemd's STATUS line read it; a promotion changes it.
// No Asio here: the session and the metrics include it.
#include <cstdint>
#include <array>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>
#include <string>

namespace db {
class Follower;
class Writer;
}  // namespace db

namespace accountsd {

class NodeRole {
 public:
  struct View {
    bool replica = false;
    std::string primary;    // the primary's advertised address ("" = unknown)
    uint64_t position = 0;  // the change-log position applied (replica) or committed (primary)
    int64_t lag_ms = 0;     // how far behind the primary (0 on the primary)
    int64_t since_ms = 0;   // Unix ms: when this node took this role
    bool promote = false;   // a replica that takes over when the primary's lease comes free
    uint64_t reloads = 0;   // full reloads a replica had to do
    bool following = false; // a replica whose follower is connected to the database now
  };

  // `writer` may be null (memory-only: no positions).
  void become_primary(const db::Writer* writer, std::string address);
  void become_replica(db::Follower* follower, bool promote);
  void set_primary_address(std::string address);

  // On a replica: hands the last uses of sessions checked here to the follower, for the primary.
  void forward_touches(std::vector<std::pair<std::array<uint8_t, 16>, int64_t>> touches);

  View view() const;
  bool replica() const;
  // How far behind the primary this node is (ms): 0 on the primary, at the cost of one atomic
  // load (WHOAMI asks on every check); on a replica, the follower's lag.
  int64_t lag_ms() const;
  uint64_t position() const;

 private:
  mutable std::mutex mutex_;  // the follower goes away at a promotion: read it under the lock
  const db::Writer* writer_ = nullptr;
  db::Follower* follower_ = nullptr;
  std::atomic<bool> replica_{false};  // written under the lock, read without it by lag_ms()
  bool promote_ = false;
  std::string primary_;
  int64_t since_ms_ = 0;
};

}  // namespace accountsd
