#include "daemon/metrics.hpp"

#include "daemon/role.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <stdexcept>

#include "accounts/service.hpp"
#include "daemon/server.hpp"
#include "db/lease.hpp"
#include "db/warm_load.hpp"
#include "db/writer.hpp"

namespace accountsd {

SharedHistogram::SharedHistogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void SharedHistogram::observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

SharedHistogram::Snapshot SharedHistogram::snapshot() const {
  Snapshot s{bounds_, std::vector<uint64_t>(bounds_.size() + 1), sum_.load(std::memory_order_relaxed)};
  for (size_t i = 0; i <= bounds_.size(); ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  return s;
}

void WriterMetrics::observe(size_t rows, std::chrono::nanoseconds took, bool committed) {
  if (!committed) {
    failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  batch_rows.observe(static_cast<double>(rows));
  commit_seconds.observe(std::chrono::duration<double>(took).count());
}

// ---- Requests: one shard per thread --------------------------------------------------------

namespace {
constexpr size_t kBuckets = kLatencyBounds.size() + 1;  // the last one is +Inf

constexpr std::array<uint64_t, kLatencyBounds.size()> bounds_ns() {
  std::array<uint64_t, kLatencyBounds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint64_t>(kLatencyBounds[i] * 1e9 + 0.5);
  return out;
}
constexpr auto kBoundsNs = bounds_ns();

std::atomic<uint64_t> next_instance{1};

// Only the owning thread writes a shard's counters, so an increment is a plain load and store;
// the atomics only keep a concurrent scrape's reads well defined.
inline void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
}  // namespace

struct RequestMetrics::Shard {
  explicit Shard(size_t slots)
      : counts(new std::atomic<uint64_t>[slots * kCodes]()),
        buckets(new std::atomic<uint64_t>[slots * kBuckets]()),
        sum_ns(new std::atomic<uint64_t>[slots]()) {}
  std::unique_ptr<std::atomic<uint64_t>[]> counts, buckets, sum_ns;
};

RequestMetrics::RequestMetrics(std::vector<std::string> commands)
    : commands_(std::move(commands)), id_(next_instance.fetch_add(1)) {
  commands_.emplace_back(kNoCommand);
}

RequestMetrics::~RequestMetrics() = default;

RequestMetrics::Shard& RequestMetrics::shard() {
  struct Cached {
    uint64_t owner = 0;
    Shard* shard = nullptr;
  };
  thread_local Cached cached;
  if (cached.owner != id_) {
    std::lock_guard lock(mutex_);
    shards_.push_back(std::make_unique<Shard>(commands_.size()));
    cached = {id_, shards_.back().get()};
  }
  return *cached.shard;
}

void RequestMetrics::record(size_t slot, size_t code, std::chrono::nanoseconds took) {
  Shard& s = shard();
  bump(s.counts[slot * kCodes + code]);
  uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(0, took.count()));
  size_t bucket = 0;
  while (bucket < kBoundsNs.size() && ns > kBoundsNs[bucket]) ++bucket;
  bump(s.buckets[slot * kBuckets + bucket]);
  bump(s.sum_ns[slot], ns);
}

RequestMetrics::Totals RequestMetrics::totals() const {
  size_t slots = commands_.size();
  Totals t{std::vector<uint64_t>(slots * kCodes), std::vector<uint64_t>(slots * kBuckets), std::vector<uint64_t>(slots)};
  std::lock_guard lock(mutex_);
  for (const auto& s : shards_) {
    for (size_t i = 0; i < t.counts.size(); ++i) t.counts[i] += s->counts[i].load(std::memory_order_relaxed);
    for (size_t i = 0; i < t.buckets.size(); ++i) t.buckets[i] += s->buckets[i].load(std::memory_order_relaxed);
    for (size_t i = 0; i < slots; ++i) t.sum_ns[i] += s->sum_ns[i].load(std::memory_order_relaxed);
  }
  return t;
}

// ---- The scrape ----------------------------------------------------------------------------

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric sample(double value, MetricType type, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  return m;
}

MetricFamily single(std::string name, std::string help, MetricType type, double value) {
  auto f = family(std::move(name), std::move(help), type);
  f.metric.push_back(sample(value, type));
  return f;
}

ClientMetric histogram(const std::vector<double>& bounds, const uint64_t* counts, double sum,
                       std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += counts[i];
    m.histogram.bucket.push_back(
        {cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  return m;
}

MetricFamily histogram_family(std::string name, std::string help, const SharedHistogram& h) {
  auto f = family(std::move(name), std::move(help), MetricType::Histogram);
  auto s = h.snapshot();
  f.metric.push_back(histogram(s.bounds, s.counts.data(), s.sum));
  return f;
}

class Collector final : public prometheus::Collectable {
 public:
  explicit Collector(MetricSources sources) : s_(sources) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    add_requests(out);
    add_accounts(out);
    add_passwords(out);
    add_database(out);
    return out;
  }

 private:
  void add_requests(std::vector<MetricFamily>& out) const {
    const auto& names = s_.requests.commands();
    auto totals = s_.requests.totals();
    auto requests = family("accountsd_requests_total", "Requests answered, by command and reply code (OK or the "
                                                       "error code); command=\"(none)\" for lines naming no command",
                           MetricType::Counter);
    auto latency = family("accountsd_request_duration_seconds",
                          "Time from a complete request line to its reply, by command", MetricType::Histogram);
    std::vector<double> bounds(kLatencyBounds.begin(), kLatencyBounds.end());
    for (size_t slot = 0; slot < names.size(); ++slot) {
      for (size_t code = 0; code < RequestMetrics::kCodes; ++code) {
        uint64_t n = totals.counts[slot * RequestMetrics::kCodes + code];
        // Every command shows its OK series from the start (so rate() has a zero to begin
        // with); an error code appears once it happened.
        if (n == 0 && (code != 0 || slot == s_.requests.no_command_slot())) continue;
        std::string code_label = code == 0 ? "OK" : std::string(protocol::code_name(protocol::Error(code - 1)));
        requests.metric.push_back(
            sample(static_cast<double>(n), MetricType::Counter, {{"code", code_label}, {"command", names[slot]}}));
      }
      latency.metric.push_back(histogram(bounds, &totals.buckets[slot * (bounds.size() + 1)],
                                         static_cast<double>(totals.sum_ns[slot]) / 1e9, {{"command", names[slot]}}));
    }
    out.push_back(std::move(requests));
    out.push_back(std::move(latency));
    out.push_back(single("accountsd_connections", "Open client connections", MetricType::Gauge,
                         static_cast<double>(s_.server.connections())));
    out.push_back(single("accountsd_connections_unauthenticated", "Open connections that have not authenticated yet",
                         MetricType::Gauge, static_cast<double>(s_.server.unauthenticated())));
  }

  void add_accounts(std::vector<MetricFamily>& out) const {
    auto counts = s_.service.counts();
    auto accounts = family("accountsd_accounts", "Accounts in memory, by state", MetricType::Gauge);
    accounts.metric.push_back(sample(static_cast<double>(counts.unconfirmed), MetricType::Gauge, {{"state", "unconfirmed"}}));
    accounts.metric.push_back(sample(static_cast<double>(counts.active), MetricType::Gauge, {{"state", "active"}}));
    accounts.metric.push_back(sample(static_cast<double>(counts.deactivated), MetricType::Gauge, {{"state", "deactivated"}}));
    out.push_back(std::move(accounts));
    out.push_back(single("accountsd_sessions", "Open login sessions in memory", MetricType::Gauge,
                         static_cast<double>(s_.service.session_count())));
    out.push_back(single("accountsd_lockouts_total",
                         "Times a source was locked out of an email after too many failed logins (LOCKED follows)",
                         MetricType::Counter, static_cast<double>(s_.service.lockouts())));
    out.push_back(single("accountsd_accounts_in_doubt",
                         "Accounts whose last change timed out (UNAVAILABLE) and is not yet known to be committed or not",
                         MetricType::Gauge, static_cast<double>(s_.service.accounts_in_doubt())));
    bool loading = s_.server.loading();
    out.push_back(single("accountsd_ready", "1 once the warm-load is over and account commands are served",
                         MetricType::Gauge, loading ? 0 : 1));
    out.push_back(single("accountsd_warm_load_rows", "Account rows read by the warm-load", MetricType::Gauge,
                         static_cast<double>(s_.load.rows.load())));
    out.push_back(single("accountsd_warm_load_sessions", "Session rows read by the warm-load", MetricType::Gauge,
                         static_cast<double>(s_.load.sessions.load())));
    out.push_back(single("accountsd_warm_load_seconds", "How long the warm-load took (0 while it runs)",
                         MetricType::Gauge, s_.load_seconds.load()));
    out.push_back(single("accountsd_start_time_seconds", "When this daemon started, in Unix seconds", MetricType::Gauge,
                         std::chrono::duration<double>(s_.started.time_since_epoch()).count()));
  }

  void add_passwords(std::vector<MetricFamily>& out) const {
    const auto& pool = s_.service.password_pool();
    out.push_back(single("accountsd_password_workers", "Threads hashing and verifying passwords", MetricType::Gauge,
                         pool.workers()));
    out.push_back(single("accountsd_password_queue", "Password hashes and verifications waiting for a worker",
                         MetricType::Gauge, static_cast<double>(pool.queued())));
    out.push_back(single("accountsd_password_rejected_total",
                         "Password work refused because the queue was full (the request answered BUSY)",
                         MetricType::Counter, static_cast<double>(pool.rejected())));
  }

  void add_database(std::vector<MetricFamily>& out) const {
    auto role = s_.role.view();
    bool lease_lost = s_.lease != nullptr && !s_.server.fenced_reason().empty();
    bool up = role.replica ? role.following : s_.writer != nullptr && s_.writer->connected() && !lease_lost;
    out.push_back(single("accountsd_database_up",
                         "1 while PostgreSQL answers and this daemon holds the lease (STATS database=up)",
                         MetricType::Gauge, up ? 1 : 0));
    out.push_back(single("accountsd_database_configured", "1 when a database is configured (0: memory-only mode)",
                         MetricType::Gauge, s_.writer != nullptr ? 1 : 0));
    out.push_back(single("accountsd_lease_held", "1 while this daemon holds the database lease", MetricType::Gauge,
                         s_.lease != nullptr && !role.replica && !lease_lost ? 1 : 0));
    out.push_back(single("accountsd_replication_replica", "1 while this node is a replica, 0 while it is the primary",
                         MetricType::Gauge, role.replica ? 1 : 0));
    out.push_back(single("accountsd_replication_position",
                         "The change-log position this node applied (replica) or committed (primary)", MetricType::Gauge,
                         static_cast<double>(role.position)));
    out.push_back(single("accountsd_replication_lag_seconds", "How far this replica is behind the primary (0 on the primary)",
                         MetricType::Gauge, static_cast<double>(role.lag_ms) / 1000.0));
    out.push_back(single("accountsd_replication_reloads_total", "Full reloads this replica needed (its log could not continue)",
                         MetricType::Counter, static_cast<double>(role.reloads)));
    out.push_back(single("accountsd_lease_epoch", "The lease epoch this daemon writes under", MetricType::Gauge,
                         s_.lease == nullptr ? 0 : static_cast<double>(s_.lease->epoch())));
    out.push_back(single("accountsd_writer_queue", "Changes waiting for the group-commit writer", MetricType::Gauge,
                         s_.writer == nullptr ? 0 : static_cast<double>(s_.writer->queued())));
    out.push_back(single("accountsd_writer_commits_total", "Transactions the writer committed", MetricType::Counter,
                         s_.writer == nullptr ? 0 : static_cast<double>(s_.writer->commits())));
    out.push_back(single("accountsd_writer_failures_total",
                         "Writer transactions that did not commit (retried, or failed when PostgreSQL refused the data)",
                         MetricType::Counter, static_cast<double>(s_.writes.failures.load())));
    out.push_back(histogram_family("accountsd_writer_batch_changes", "Changes per committed writer transaction",
                                   s_.writes.batch_rows));
    out.push_back(histogram_family("accountsd_writer_commit_duration_seconds",
                                   "Time to write and commit one batch", s_.writes.commit_seconds));
  }

  MetricSources s_;
};

}  // namespace

struct MetricsEndpoint::Impl {
  std::shared_ptr<Collector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
};

MetricsEndpoint::MetricsEndpoint(const std::string& host, uint16_t port, MetricSources sources)
    : impl_(std::make_unique<Impl>()) {
  std::string address = host.find(':') != std::string::npos ? std::string("[").append(host).append("]") : host;
  address.append(":").append(std::to_string(port));
  try {
    // Two HTTP threads of its own: a scrape never runs on a protocol thread.
    impl_->exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    throw std::runtime_error("metrics.listen " + address + ": cannot listen: " + e.what());
  }
  impl_->collector = std::make_shared<Collector>(sources);
  impl_->exposer->RegisterCollectable(impl_->collector);
}

MetricsEndpoint::~MetricsEndpoint() = default;

uint16_t MetricsEndpoint::port() const {
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<uint16_t>(ports.front());
}

}  // namespace accountsd
