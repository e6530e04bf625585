#include "db/warm_load.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

#include "db/copy.hpp"
#include "db/rows.hpp"

namespace db {
namespace {

Result exec(PGconn* c, const char* sql, ExecStatusType expected) {
  return db::exec(c, sql, expected, "warm-load query failed");
}

// Rows travel from the reader to the parsers in chunks: one allocation and one hand-over per
// kChunkRows rows instead of per row. At most kMaxChunks wait, which bounds the memory in flight.
constexpr size_t kChunkRows = 4096;
constexpr size_t kMaxChunks = 16;

struct Chunk {
  std::string bytes;           // the rows back to back
  std::vector<uint32_t> ends;  // where each row ends in `bytes`
};

class ChunkQueue {
 public:
  // False when the load failed and the reader should stop.
  bool push(Chunk chunk) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [this] { return queue_.size() < kMaxChunks || failure_; });
    if (failure_) return false;
    queue_.push_back(std::move(chunk));
    ready_.notify_one();
    return true;
  }
  // False when there is no more work: the reader finished and the queue is empty, or a failure.
  bool pop(Chunk& chunk) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return !queue_.empty() || finished_ || failure_; });
    if (failure_ || queue_.empty()) return false;
    chunk = std::move(queue_.front());
    queue_.pop_front();
    space_.notify_one();
    return true;
  }
  void finish() {
    std::lock_guard lock(mutex_);
    finished_ = true;
    ready_.notify_all();
  }
  void fail(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!failure_) failure_ = e;
    ready_.notify_all();
    space_.notify_all();
  }
  std::exception_ptr failure() {
    std::lock_guard lock(mutex_);
    return failure_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<Chunk> queue_;
  bool finished_ = false;
  std::exception_ptr failure_;
};

// Streams `copy` (a COPY ... TO STDOUT) on the calling thread and hands its rows, in chunks, to
// `parsers` threads that call `take` on them, up to LoadSinks::kAdoptBatch rows at a time (a span
// of string_views). `read` is called on the calling thread for each row
// as it arrives (progress). Returns when every row was taken; rethrows the first exception any
// thread raised, after every thread has stopped.
enum class Format { text, binary };

template <class Take, class Read>
void stream_in_parallel(PGconn* c, const std::string& copy, Format format, const LoadSinks& sinks, Take take, Read read) {
  ChunkQueue queue;
  std::vector<std::thread> parsers;
  for (unsigned i = 0; i < std::max(1u, sinks.parsers); ++i)
    parsers.emplace_back([&queue, &sinks, &take] {
      try {
        auto scope = sinks.parser_scope();
        Chunk chunk;
        std::array<std::string_view, LoadSinks::kAdoptBatch> lines;
        while (queue.pop(chunk)) {
          uint32_t begin = 0;
          size_t n = 0;
          for (uint32_t end : chunk.ends) {
            lines[n++] = std::string_view(chunk.bytes).substr(begin, end - begin);
            begin = end;
            if (n == lines.size()) take(std::span(lines.data(), n)), n = 0;
          }
          if (n > 0) take(std::span(lines.data(), n));
        }
      } catch (...) {
        queue.fail(std::current_exception());
      }
    });
  // However the reading ends, the parsers are told and joined before this function returns.
  struct Join {
    ChunkQueue& queue;
    std::vector<std::thread>& threads;
    ~Join() {
      queue.finish();
      for (auto& t : threads) t.join();
    }
  } join{queue, parsers};

  Chunk chunk;
  auto hand_over = [&] {
    if (chunk.ends.empty()) return;
    if (!queue.push(std::move(chunk))) std::rethrow_exception(queue.failure());
    chunk = Chunk{};
  };
  (format == Format::binary ? copy_out_binary : copy_out)(c, copy, [&](std::string_view line) {
    chunk.bytes.append(line);
    chunk.ends.push_back(static_cast<uint32_t>(chunk.bytes.size()));
    if (chunk.ends.size() == kChunkRows) hand_over();
    read();
  });
  hand_over();
  queue.finish();
  for (auto& t : parsers) t.join();
  parsers.clear();
  if (auto failure = queue.failure()) std::rethrow_exception(failure);
}

// Logs the rows read so far once a second: "warm-load: N <what>, R rows/s, P%".
class Reporter {
 public:
  Reporter(const char* what, uint64_t expected) : what_(what), expected_(expected) {}
  void row(uint64_t rows) {
    if ((rows & 1023) != 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    double seconds = std::chrono::duration<double>(now - last_).count();
    spdlog::info("warm-load: {} {}, {:.0f} rows/s, {}%", rows, what_, (rows - last_rows_) / seconds,
                 expected_ ? std::min<uint64_t>(99, rows * 100 / expected_) : 0);
    last_ = now;
    last_rows_ = rows;
  }

 private:
  const char* what_;
  uint64_t expected_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  uint64_t last_rows_ = 0;
};

}  // namespace

uint64_t warm_load(const std::string& url, LoadProgress& progress, const LoadSinks& sinks) {
  Connection c = connect(url, "warm-load cannot connect");

  // The planner's estimates are free and good enough for showing progress and for sizing the
  // index, which grows past a low one and gives back what a high one took. 0 when a table was
  // never analyzed.
  // - The accounts': made the way the planner makes it (the rows per page of the last ANALYZE
  //   times the pages now), and never more rows than the table's bytes hold at 128 bytes a row
  //   (no account row is that small), so that a wrong pg_class cannot make the index reserve
  //   memory for rows that are not there.
  // - The sessions', only for progress: the last ANALYZE's count, which needs no lock on the
  //   table (pg_relation_size would wait behind a lock that the sessions' COPY waits for anyway,
  //   and the progress would show nothing meanwhile).
  auto estimate = exec(c.get(),
                       "SELECT (SELECT CASE WHEN reltuples > 0 AND relpages > 0 THEN least(reltuples / relpages * "
                       "pg_relation_size(oid) / current_setting('block_size')::int, pg_relation_size(oid) / 128)::bigint"
                       " ELSE 0 END FROM pg_class WHERE oid = 'accounts'::regclass),"
                       " (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'sessions'::regclass)",
                       PGRES_TUPLES_OK);
  auto estimated = [&estimate](int column) -> uint64_t {
    return PQntuples(estimate.get()) == 1 && !PQgetisnull(estimate.get(), 0, column)
               ? std::stoull(PQgetvalue(estimate.get(), 0, column))
               : 0;
  };
  progress.expected = estimated(0);
  progress.expected_sessions = estimated(1);

  auto started = std::chrono::steady_clock::now();
  exec(c.get(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK);
  auto position = exec(c.get(), "SELECT position FROM writer_lease WHERE id = 1", PGRES_TUPLES_OK);
  progress.position = PQntuples(position.get()) == 1 ? std::stoull(PQgetvalue(position.get(), 0, 0)) : 0;

  Reporter accounts("accounts", progress.expected);
  if (sinks.expect_accounts) sinks.expect_accounts(progress.expected);
  stream_in_parallel(
      // Binary: PostgreSQL formats no uuid or bigint as text, and the parsers read none back.
      c.get(), std::string("COPY accounts (") + kColumns + ") TO STDOUT (FORMAT binary)", Format::binary, sinks,
      [&sinks](std::span<const std::string_view> lines) {
        std::array<accounts::AccountRecord, LoadSinks::kAdoptBatch> records;
        for (size_t i = 0; i < lines.size(); ++i) records[i] = parse_copy_tuple(lines[i]);
        sinks.adopt(std::span(records.data(), lines.size()));
      },
      [&] { accounts.row(progress.rows.fetch_add(1, std::memory_order_relaxed) + 1); });
  if (sinks.accounts_adopted) sinks.accounts_adopted();
  // Sessions only once every account is in: each one is attached to its account.
  progress.loading_sessions = true;
  Reporter sessions("sessions", progress.expected_sessions);
  if (sinks.expect_sessions) sinks.expect_sessions(progress.expected_sessions);
  stream_in_parallel(
      c.get(), std::string("COPY sessions (") + kSessionColumns + ") TO STDOUT (FORMAT binary)", Format::binary, sinks,
      [&sinks](std::span<const std::string_view> tuples) {
        std::array<accounts::SessionRow, LoadSinks::kAdoptBatch> rows;
        for (size_t i = 0; i < tuples.size(); ++i) rows[i] = parse_session_tuple(tuples[i]);
        sinks.adopt_sessions(std::span(rows.data(), tuples.size()));
      },
      [&] { sessions.row(progress.sessions.fetch_add(1, std::memory_order_relaxed) + 1); });
  if (sinks.sessions_adopted) sinks.sessions_adopted();
  auto legacy = exec(c.get(), "SELECT EXISTS (SELECT 1 FROM sessions WHERE blake2b_digest)", PGRES_TUPLES_OK);
  if (PQntuples(legacy.get()) == 1 && std::string_view(PQgetvalue(legacy.get(), 0, 0)) == "t") {
    spdlog::info("warm-load: some sessions were opened before schema 5; their tokens are also looked up by BLAKE2b");
    if (sinks.legacy_session_digests) sinks.legacy_session_digests();
  }
  exec(c.get(), "COMMIT", PGRES_COMMAND_OK);

  uint64_t rows = progress.rows.load();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("warm-load: done, {} accounts and {} sessions in {:.2f} s ({:.0f} accounts/s)", rows,
               progress.sessions.load(), seconds, seconds > 0 ? rows / seconds : 0.0);
  return rows;
}

}  // namespace db
