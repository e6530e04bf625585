// loadgen: drives accountsd over its line protocol and reports throughput, latency percentiles
// and every error reply by code. N connections each keep `pipeline` requests in flight (a batch
// is written, then its replies are read, as redis-benchmark -P does).
//
//   loadgen --port 7411 --connections 50 --pipeline 1 --duration 10 --mix get:1,find:1 --population 1000000
//
// Population accounts are the ones scripts/bench loads with COPY: account g (1..population) has
// id 00000000-0000-0000-0000-<g as 12 hex digits> and email user<g>@bench.example, and every one
// has the password "bench-password".
#include <CLI/CLI.hpp>

#include <asio/connect.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// A log-linear histogram of nanoseconds: 1/128 relative precision, 64 octaves.
class Histogram {
 public:
  void record(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }
  void merge(const Histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }
  uint64_t percentile(double p) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(total_ - 1)) + 1, seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i)
      if ((seen += counts_[i]) >= rank) return std::min(upper(i), max_);
    return max_;
  }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }

 private:
  static constexpr int kSub = 128;
  static size_t index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    int octave = 63 - __builtin_clzll(v) - 6;  // v >> octave lands in [64, 128)
    return static_cast<size_t>(octave) * 64 + static_cast<size_t>(v >> octave);
  }
  static uint64_t upper(size_t i) {
    if (i < kSub) return i;
    size_t octave = i / 64 - 1, top = i % 64 + 64;
    return ((top + 1) << (octave + 1)) - 1;
  }
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(64 * 64 + kSub, 0);
  uint64_t total_ = 0, max_ = 0;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 7411;
  int connections = 50;
  int pipeline = 1;
  double duration = 10;
  uint64_t requests = 0;  // when set, stop after this many instead of after `duration`
  std::string mix = "get:1";
  uint64_t population = 0;
  std::string secret;
  std::string label = "run";
  double rate = 0;  // requests per second per connection; 0 = as fast as replies come back
  bool json_only = false;
  // Speak to Redis instead, so that both sides of a comparison are measured by the same client:
  // `get` becomes `GET key:<g-1>` (the keys DEBUG POPULATE makes), replies are RESP.
  bool redis = false;
};

enum class Kind { get, find, whoami, login, register_population, register_unique, change_email, toggle, ping };

struct Operation {
  Kind kind;
  int weight;
};

// The --mix names, each decided once: a request's kind is a switch, not a chain of string
// comparisons that a command further down the list pays more for.
std::optional<Kind> kind_named(std::string_view name) {
  static const std::pair<std::string_view, Kind> kKinds[] = {
      {"get", Kind::get},     {"find", Kind::find},          {"whoami", Kind::whoami},
      {"login", Kind::login}, {"register_population", Kind::register_population},
      {"register", Kind::register_unique}, {"change_email", Kind::change_email},
      {"toggle", Kind::toggle}, {"ping", Kind::ping}};
  for (const auto& [n, kind] : kKinds)
    if (n == name) return kind;
  return std::nullopt;
}

struct Stats {
  Histogram latency;
  std::map<std::string, uint64_t> errors;  // code -> count
  uint64_t ok = 0;
};

// Requests are written straight into the batch, without snprintf or temporaries: the client
// shares the machine's two cores with the server it measures, so every nanosecond it spends per
// request is one the server does not get (docs/BENCHMARKS.md, "A leaner load generator").

// `value` in decimal.
void append_decimal(std::string& out, uint64_t value) {
  char digits[20];
  char* first = std::end(digits);
  do *--first = static_cast<char>('0' + value % 10);
  while ((value /= 10) != 0);
  out.append(first, std::end(digits));
}

// Account g's id: 00000000-0000-0000-0000-<g as 12 hex digits>.
void append_id(std::string& out, uint64_t g) {
  char id[] = "00000000-0000-0000-0000-000000000000";
  for (int i = 35; i >= 24; --i, g >>= 4) id[i] = "0123456789abcdef"[g & 0xf];
  out.append(id, 36);
}

// The session token bench/session_rows stored (as its digest) for population member g:
// `t` and g as 42 decimal digits, written into a copy of the zeros as append_id writes an id.
void append_session_token(std::string& out, uint64_t g) {
  char token[] = "t000000000000000000000000000000000000000000";
  static_assert(sizeof token == 44);
  for (int i = 42; g != 0 && i > 0; --i, g /= 10) token[i] = static_cast<char>('0' + g % 10);
  out.append(token, 43);
}

// Shared by every connection: the next population member that register_population creates.
std::atomic<uint64_t> next_member{0};

class Generator {
 public:
  Generator(const Options& o, const std::vector<Operation>& mix, int connection, uint64_t seed)
      : o_(o), mix_(mix), connection_(connection), rng_(seed) {
    for (const auto& op : mix) total_weight_ += op.weight;
  }

  // Appends the next request line (with LF) to `out`.
  void next(std::string& out) {
    int pick = std::uniform_int_distribution<int>(1, total_weight_)(rng_);
    Kind op = mix_.back().kind;
    for (const auto& m : mix_)
      if ((pick -= m.weight) <= 0) {
        op = m.kind;
        break;
      }
    uint64_t g = o_.population ? std::uniform_int_distribution<uint64_t>(1, o_.population)(rng_) : 1;
    ++sequence_;
    auto unique_email = [&] {  // <label>-<connection>-<sequence>@bench.example
      out += o_.label;
      out += '-';
      append_decimal(out, static_cast<uint64_t>(connection_));
      out += '-';
      append_decimal(out, sequence_);
      out += "@bench.example";
    };
    auto population_email = [&](uint64_t member) {  // user<g>@bench.example
      out += "user";
      append_decimal(out, member);
      out += "@bench.example";
    };
    if (o_.redis) {
      if (op != Kind::get) {
        out += "PING\r\n";
        return;
      }
      out += "GET key:";
      append_decimal(out, g - 1);
      out += "\r\n";
      return;
    }
    switch (op) {
      case Kind::get:
        out += "GET ";
        append_id(out, g);
        out += '\n';
        return;
      case Kind::find:
        out += "FIND ";
        population_email(g);
        out += '\n';
        return;
      case Kind::whoami:
        out += "WHOAMI ";
        append_session_token(out, g);
        out += '\n';
        return;
      case Kind::login:
        out += "LOGIN ";
        population_email(g);
        out += " bench-password\n";
        return;
      case Kind::register_population: {  // user1..userN, each once, across all connections
        uint64_t member = ++next_member;
        if (member > o_.population) {
          out += "PING\n";
          return;
        }
        out += "REGISTER ";
        population_email(member);
        out += " bench-password\n";
        return;
      }
      case Kind::register_unique:
        out += "REGISTER ";
        unique_email();
        out += " bench-password\n";
        return;
      case Kind::change_email:
        out += "CHANGE_EMAIL ";
        append_id(out, g);
        out += ' ';
        unique_email();
        out += '\n';
        return;
      case Kind::toggle: {
        // Each connection cycles its own accounts: DEACTIVATE then REACTIVATE the same one.
        uint64_t mine = (toggles_ / 2) * static_cast<uint64_t>(o_.connections) + static_cast<uint64_t>(connection_);
        uint64_t account = o_.population ? mine % o_.population + 1 : 1;
        out += toggles_++ % 2 == 0 ? "DEACTIVATE " : "REACTIVATE ";
        append_id(out, account);
        out += '\n';
        return;
      }
      case Kind::ping: out += "PING\n"; return;
    }
  }

 private:
  const Options& o_;
  const std::vector<Operation>& mix_;
  int connection_;
  std::mt19937_64 rng_;
  int total_weight_ = 0;
  uint64_t sequence_ = 0;
  uint64_t toggles_ = 0;  // DEACTIVATE on even, REACTIVATE of the same account on odd
};

// Reply lines out of one flat buffer: a read takes whatever the socket has (a pipelined batch's
// replies come in a few reads), and lines are cut from it with memchr. asio::async_read_until
// looked for the LF a byte at a time through buffer iterators and was then erased from the front
// of the buffer, one reply at a time: 17% of this client's CPU at pipeline depth 16, and more
// for longer replies, which skewed comparisons between commands.
class LineReader {
 public:
  // The next line, without its LF, valid until the next call; `arrived` is when the read that
  // completed it returned.
  asio::awaitable<std::string_view> next(asio::ip::tcp::socket& socket, Clock::time_point& arrived) {
    for (;;) {
      if (const void* lf = std::memchr(data_.data() + start_, '\n', end_ - start_)) {
        size_t at = static_cast<size_t>(static_cast<const char*>(lf) - data_.data());
        std::string_view line(data_.data() + start_, at - start_);
        start_ = at + 1;
        arrived = arrived_;
        co_return line;
      }
      if (start_ == end_) {
        start_ = end_ = 0;
      } else if (start_ > 0) {
        std::memmove(data_.data(), data_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      }
      if (data_.size() - end_ < kRead) data_.resize(end_ + kRead);
      end_ += co_await socket.async_read_some(asio::buffer(data_.data() + end_, data_.size() - end_), asio::use_awaitable);
      arrived_ = Clock::now();
    }
  }

 private:
  static constexpr size_t kRead = 64 * 1024;
  std::string data_ = std::string(kRead, '\0');
  size_t start_ = 0, end_ = 0;
  Clock::time_point arrived_;
};

asio::awaitable<void> drive(const Options& o, const std::vector<Operation>& mix, int connection, Stats& stats,
                            Clock::time_point deadline, std::atomic<uint64_t>& budget) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket(executor);
  asio::ip::tcp::resolver resolver(executor);
  auto endpoints = co_await resolver.async_resolve(o.host, std::to_string(o.port), asio::use_awaitable);
  co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
  socket.set_option(asio::ip::tcp::no_delay(true));
  LineReader reader;
  Clock::time_point arrived;
  if (!o.secret.empty()) {
    std::string auth = "AUTH \"" + o.secret + "\"\n";
    co_await asio::async_write(socket, asio::buffer(auth), asio::use_awaitable);
    co_await reader.next(socket, arrived);
  }
  Generator generator(o, mix, connection, 0x5eed + static_cast<uint64_t>(connection));
  std::string batch;
  asio::steady_timer pace(executor);
  auto next_send = Clock::now();
  while (Clock::now() < deadline) {
    if (o.rate > 0) {  // a steady probe rather than a flood
      next_send += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.pipeline / o.rate));
      pace.expires_at(next_send);
      co_await pace.async_wait(asio::use_awaitable);
    }
    int depth = o.pipeline;
    if (o.requests) {
      uint64_t left = budget.load();
      while (left > 0 && !budget.compare_exchange_weak(left, left - std::min<uint64_t>(left, static_cast<uint64_t>(depth)))) {
      }
      if (left == 0) break;
      depth = static_cast<int>(std::min<uint64_t>(left, static_cast<uint64_t>(depth)));
    }
    batch.clear();
    for (int i = 0; i < depth; ++i) generator.next(batch);
    auto sent = Clock::now();
    co_await asio::async_write(socket, asio::buffer(batch), asio::use_awaitable);
    for (int i = 0; i < depth; ++i) {
      std::string_view line = co_await reader.next(socket, arrived);
      if (o.redis) {
        // Judged before a bulk string's data line is read, which may move the buffer under `line`.
        if (line.starts_with('-')) ++stats.errors["REDIS"];
        else ++stats.ok;
        if (line.size() > 1 && line[0] == '$' && line[1] != '-') co_await reader.next(socket, arrived);
      } else if (line.starts_with("OK")) {
        ++stats.ok;
      } else {  // ERR CODE message
        std::string_view code = line.substr(std::min<size_t>(4, line.size()));
        ++stats.errors[std::string(code.substr(0, code.find(' ')))];
      }
      stats.latency.record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(arrived - sent).count()));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"loadgen: load accountsd over its line protocol and report throughput and latency"};
  app.add_option("--host", o.host);
  app.add_option("--port", o.port);
  app.add_option("-c,--connections", o.connections)->check(CLI::Range(1, 100000));
  app.add_option("-P,--pipeline", o.pipeline, "requests in flight per connection")->check(CLI::Range(1, 10000));
  app.add_option("-d,--duration", o.duration, "seconds to run");
  app.add_option("-n,--requests", o.requests, "stop after this many requests instead");
  app.add_option("--mix", o.mix, "weighted commands: get, find, whoami, login, register, register_population (user1..userN once each), change_email, toggle, ping (e.g. get:1,find:1)");
  app.add_option("--population", o.population, "accounts preloaded by scripts/bench (user1..userN)");
  app.add_option("--secret", o.secret, "AUTH secret");
  app.add_flag("--redis", o.redis, "drive Redis (RESP; get = GET key:<n> as DEBUG POPULATE names them) with the same client");
  app.add_option("--label", o.label, "name of this run (also makes REGISTER emails unique)");
  app.add_option("--rate", o.rate, "requests per second per connection (default: as fast as possible)");
  app.add_flag("--json", o.json_only, "print only the JSON object");
  CLI11_PARSE(app, argc, argv);

  std::vector<Operation> mix;
  std::stringstream parts(o.mix);
  for (std::string part; std::getline(parts, part, ',');) {
    auto colon = part.find(':');
    std::string name = part.substr(0, colon);
    auto kind = kind_named(name);
    if (!kind) {
      std::fprintf(stderr, "loadgen: --mix: no command named '%s'\n", name.c_str());
      return 2;
    }
    mix.push_back({*kind, colon == std::string::npos ? 1 : std::stoi(part.substr(colon + 1))});
  }

  asio::io_context io(1);
  std::vector<Stats> stats(static_cast<size_t>(o.connections));
  std::atomic<uint64_t> budget{o.requests};
  auto started = Clock::now();
  auto deadline = o.requests ? Clock::time_point::max() : started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  int failed = 0;
  for (int i = 0; i < o.connections; ++i)
    asio::co_spawn(io, drive(o, mix, i, stats[static_cast<size_t>(i)], deadline, budget), [&failed](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        if (failed++ == 0) std::fprintf(stderr, "loadgen: connection failed: %s\n", ex.what());
      }
    });
  io.run();
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  Stats all;
  for (const auto& s : stats) {
    all.latency.merge(s.latency);
    all.ok += s.ok;
    for (const auto& [code, n] : s.errors) all.errors[code] += n;
  }
  uint64_t error_count = 0;
  std::string errors_json;
  for (const auto& [code, n] : all.errors) {
    error_count += n;
    errors_json += (errors_json.empty() ? "\"" : ",\"") + code + "\":" + std::to_string(n);
  }
  double rps = static_cast<double>(all.latency.total()) / seconds;
  auto us = [&](double p) { return static_cast<double>(all.latency.percentile(p)) / 1000.0; };
  char json[1024];
  std::snprintf(json, sizeof json,
                "{\"label\":\"%s\",\"mix\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"seconds\":%.3f,\"requests\":%" PRIu64
                ",\"ok\":%" PRIu64 ",\"errors\":{%s},\"failed_connections\":%d,\"rps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                "\"p999_us\":%.1f,\"max_us\":%.1f}",
                o.label.c_str(), o.mix.c_str(), o.connections, o.pipeline, seconds, all.latency.total(), all.ok,
                errors_json.c_str(), failed, rps, us(50), us(99), us(99.9), static_cast<double>(all.latency.max()) / 1000.0);
  if (!o.json_only) {
    std::printf("%-12s %10s %10s %10s %10s %10s %10s\n", "run", "req/s", "p50 us", "p99 us", "p99.9 us", "max us", "errors");
    std::printf("%-12s %10.0f %10.1f %10.1f %10.1f %10.1f %10" PRIu64 "\n", o.label.c_str(), rps, us(50), us(99), us(99.9),
                static_cast<double>(all.latency.max()) / 1000.0, error_count);
    for (const auto& [code, n] : all.errors) std::printf("  ERR %s: %" PRIu64 "\n", code.c_str(), n);
  }
  std::printf("%s\n", json);
  // A benchmark with errors is not a result.
  return (error_count > 0 || failed > 0 || all.latency.total() == 0) ? 1 : 0;
}
