#pragma once
// Prometheus metrics (docs/OPERATIONS.md, "Monitoring").
//
// Requests are counted by the thread that serves them, into a shard of counters that only that
// thread writes: no shared cache line and no locked instruction on the request path. A scrape
// sums the shards. It runs on the threads of prometheus-cpp's embedded HTTP server (civetweb),
// never on the protocol's threads, so a slow or stuck scraper cannot delay a request.
// No Asio and no prometheus-cpp in this header.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "protocol/errors.hpp"

namespace accounts {
class AccountService;
}
namespace db {
class Writer;
class Lease;
struct LoadProgress;
}  // namespace db

namespace accountsd {

class NodeRole;

class Server;

// Upper bounds of the request latency buckets, in seconds: 50 µs to 10 s.
inline constexpr std::array<double, 17> kLatencyBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                          0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                          0.5,     1,      2.5,     5,      10};

// A histogram that any thread may add to (atomic adds: for the writer's few threads, not for the
// request path). Bounds are fixed at construction.
class SharedHistogram {
 public:
  explicit SharedHistogram(std::vector<double> bounds);
  void observe(double value);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bucket (not cumulative); one more than bounds: +Inf
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Requests by command and reply code, and their latency by command.
class RequestMetrics {
 public:
  // `commands`: the command names by CommandTable slot. One more slot counts lines that named no
  // known command (and malformed lines): it is labelled kNoCommand.
  explicit RequestMetrics(std::vector<std::string> commands);
  ~RequestMetrics();
  static constexpr const char* kNoCommand = "(none)";
  static constexpr size_t kCodes = protocol::kErrorCount + 1;  // OK, then every Error

  size_t no_command_slot() const { return commands_.size() - 1; }
  // `code`: 0 for OK, 1 + the Error for an error. Any thread; lock-free after its first call.
  void record(size_t slot, size_t code, std::chrono::nanoseconds took);
  static size_t code_of(bool ok, protocol::Error error) { return ok ? 0 : 1 + static_cast<size_t>(error); }

  struct Totals {
    std::vector<uint64_t> counts;   // [slot * kCodes + code], code 0 = OK, 1 + Error
    std::vector<uint64_t> buckets;  // [slot * (bounds + 1) + bucket], not cumulative
    std::vector<uint64_t> sum_ns;   // [slot]
  };
  Totals totals() const;
  const std::vector<std::string>& commands() const { return commands_; }

 private:
  struct Shard;
  Shard& shard();

  std::vector<std::string> commands_;
  uint64_t id_;  // tells this instance's shards from an earlier instance's in a thread's cache
  mutable std::mutex mutex_;  // guards shards_ (registration and scrapes only)
  std::deque<std::unique_ptr<Shard>> shards_;
};

// The group-commit writer's batches, as its observer reports them.
struct WriterMetrics {
  SharedHistogram batch_rows{{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000}};
  SharedHistogram commit_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  std::atomic<uint64_t> failures{0};  // transactions that did not commit (each is retried or failed)
  void observe(size_t rows, std::chrono::nanoseconds took, bool committed);
};

// Everything a scrape reads. Pointers may be null where a part does not run (memory-only mode).
struct MetricSources {
  const Server& server;
  const accounts::AccountService& service;
  const db::Writer* writer;
  const db::Lease* lease;
  const db::LoadProgress& load;
  const RequestMetrics& requests;
  const WriterMetrics& writes;
  std::chrono::system_clock::time_point started;
  const std::atomic<double>& load_seconds;  // how long the warm-load took (0 until it is over)
  const NodeRole& role;
};

// The HTTP endpoint: GET /metrics in the Prometheus text format, served by prometheus-cpp.
class MetricsEndpoint {
 public:
  // Binds host:port (port 0: a free one) or throws std::runtime_error saying why not.
  MetricsEndpoint(const std::string& host, uint16_t port, MetricSources sources);
  ~MetricsEndpoint();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace accountsd
