#include "db/copy.hpp"

#include "db/rows.hpp"

#include <stdexcept>

namespace db {

Connection connect(const std::string& url, const char* what) {
  Connection c(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error(std::string(what) + ": " + PQerrorMessage(c.get()));
  return c;
}

Result exec(PGconn* c, const char* sql, ExecStatusType expected, const char* what) {
  Result r(PQexec(c, sql), &PQclear);
  if (PQresultStatus(r.get()) != expected) throw std::runtime_error(std::string(what) + ": " + PQerrorMessage(c));
  return r;
}

namespace {

// Runs the COPY and calls `message` with each CopyData message as libpq gives it.
void copy_messages(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& message) {
  exec(c, sql.c_str(), PGRES_COPY_OUT, "COPY failed");
  while (true) {
    char* buffer = nullptr;
    int n = PQgetCopyData(c, &buffer, 0);
    if (n == -1) break;  // done
    if (n == -2) throw std::runtime_error(std::string("COPY failed: ") + PQerrorMessage(c));
    std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, &PQfreemem);
    message(std::string_view(buffer, static_cast<size_t>(n)));
  }
  Result end(PQgetResult(c), &PQclear);
  if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(std::string("COPY failed: ") + PQerrorMessage(c));
}

}  // namespace

void copy_out(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& row) {
  copy_messages(c, sql, [&row](std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    row(line);
  });
}

void copy_out_binary(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& tuple) {
  // PostgreSQL sends one tuple a message; the header comes in front of the first, and the
  // trailer (a field count of -1) as a message of its own.
  static constexpr std::string_view kSignature("PGCOPY\n\377\r\n\0", 11);
  bool header = true, ended = false;
  copy_messages(c, sql, [&](std::string_view message) {
    if (ended) throw std::runtime_error("COPY failed: data after the binary trailer");
    if (header) {
      if (message.size() < kSignature.size() + 8 || message.substr(0, kSignature.size()) != kSignature)
        throw std::runtime_error("COPY failed: not a binary COPY header");
      const size_t skip = kSignature.size() + 8 + big_endian(message.substr(kSignature.size() + 4, 4));  // flags, extension
      if (message.size() < skip) throw std::runtime_error("COPY failed: binary header cut short");
      message.remove_prefix(skip);
      header = false;
      if (message.empty()) return;
    }
    if (message == std::string_view("\xff\xff", 2)) {
      ended = true;
      return;
    }
    tuple(message);
  });
  if (header || !ended) throw std::runtime_error("COPY failed: the binary stream ended without its trailer");
}

}  // namespace db
