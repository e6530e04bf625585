#pragma once
// The database side of a node's life: taking the lease, the warm-load, and in a cluster
// (replication.enabled) following the primary as a replica and taking over as a standby
// (docs/ARCHITECTURE.md, "Replication"). Includes Asio: daemon/*.cpp only.
#include <asio/io_context.hpp>
#include <atomic>
#include <functional>

#include "accounts/service.hpp"
#include "daemon/config.hpp"
#include "daemon/role.hpp"
#include "daemon/server.hpp"
#include "db/lease.hpp"
#include "db/warm_load.hpp"
#include "db/writer.hpp"

namespace accountsd {

struct NodeParts {
  const Config& config;
  asio::io_context& io;
  Server& server;
  accounts::AccountService& service;
  db::Lease& lease;
  db::Writer& writer;
  db::LoadProgress& progress;
  NodeRole& role;
  const std::atomic<bool>& stopping;
  std::function<void(int status)> shutdown;  // any thread: stop the daemon with this exit status
  std::atomic<double>& load_seconds;
  std::string advertise;  // where this node takes changes as the primary (replication.advertise)
};

// Runs on the start-up thread while the server answers LOADING. A primary returns once it serves;
// a replica returns when the daemon stops, or once it was promoted and serves as the primary.
// Throws when the node cannot start (the caller stops the daemon).
void run_node(NodeParts parts);

// ROLE and WAIT.
void add_role_commands(CommandTable& table, const NodeRole& role);

// "primary"/"replica of ..." with the replica's position and lag.
std::string role_summary(const NodeRole& role);
// systemd's STATUS line: what the node serves, and its role.
std::string status_line(const Server& server, const accounts::AccountService& service, const NodeRole& role);

}  // namespace accountsd
