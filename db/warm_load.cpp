#include "db/warm_load.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <stdexcept>

#include "db/rows.hpp"

namespace db {
namespace {

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

Result exec(PGconn* c, const char* sql, ExecStatusType expected) {
  Result r(PQexec(c, sql), &PQclear);
  if (PQresultStatus(r.get()) != expected)
    throw std::runtime_error(std::string("warm-load query failed: ") + PQerrorMessage(c));
  return r;
}

}  // namespace

// Streams `COPY <table> TO STDOUT`, calling `row` with each line (without its LF).
void copy_out(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& row) {
  exec(c, sql.c_str(), PGRES_COPY_OUT);
  while (true) {
    char* buffer = nullptr;
    int n = PQgetCopyData(c, &buffer, 0);
    if (n == -1) break;  // done
    if (n == -2) throw std::runtime_error(std::string("warm-load COPY failed: ") + PQerrorMessage(c));
    std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, &PQfreemem);
    std::string_view line(buffer, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    row(line);
  }
  Result end(PQgetResult(c), &PQclear);
  if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(std::string("warm-load COPY failed: ") + PQerrorMessage(c));
}

uint64_t warm_load(const std::string& url, LoadProgress& progress,
                   const std::function<void(accounts::AccountRecord&&)>& adopt,
                   const std::function<void(accounts::SessionRow&&)>& adopt_session) {
  Connection c(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK)
    throw std::runtime_error(std::string("warm-load cannot connect: ") + PQerrorMessage(c.get()));

  // The planner's estimate is free and good enough for showing progress (not for sizing anything:
  // after a bulk insert without ANALYZE it can be far too low).
  auto estimate = exec(c.get(), "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'accounts'::regclass",
                       PGRES_TUPLES_OK);
  uint64_t expected = PQntuples(estimate.get()) == 1 ? std::stoull(PQgetvalue(estimate.get(), 0, 0)) : 0;
  progress.expected = expected;

  auto started = std::chrono::steady_clock::now();
  auto last_report = started;
  uint64_t last_rows = 0;
  exec(c.get(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK);
  copy_out(c.get(), std::string("COPY accounts (") + kColumns + ") TO STDOUT", [&](std::string_view line) {
    adopt(parse_copy_line(line));
    uint64_t rows = progress.rows.fetch_add(1, std::memory_order_relaxed) + 1;
    if ((rows & 1023) == 0) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::seconds(1)) {
        double seconds = std::chrono::duration<double>(now - last_report).count();
        spdlog::info("warm-load: {} rows, {:.0f} rows/s, {}%", rows, (rows - last_rows) / seconds,
                     expected ? std::min<uint64_t>(99, rows * 100 / expected) : 0);
        last_report = now;
        last_rows = rows;
      }
    }
  });
  copy_out(c.get(), std::string("COPY sessions (") + kSessionColumns + ") TO STDOUT", [&](std::string_view line) {
    adopt_session(parse_session_line(line));
    progress.sessions.fetch_add(1, std::memory_order_relaxed);
  });
  exec(c.get(), "COMMIT", PGRES_COMMAND_OK);

  uint64_t rows = progress.rows.load();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("warm-load: done, {} accounts and {} sessions in {:.2f} s ({:.0f} accounts/s)", rows,
               progress.sessions.load(), seconds, seconds > 0 ? rows / seconds : 0.0);
  return rows;
}

}  // namespace db
