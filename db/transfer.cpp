#include "db/transfer.hpp"

#include <stdexcept>

#include "db/copy.hpp"
#include "db/rows.hpp"

namespace db {
namespace {
// Small enough that a send fits in the socket buffer and returns at once: PostgreSQL parses one
// piece while the next is being built, instead of each side waiting for the other.
constexpr size_t kSendBytes = 64 << 10;
}

struct AccountImport::Link {
  Connection connection{nullptr, &PQfinish};
};

AccountImport::AccountImport(const std::string& url, uint64_t epoch) : link_(std::make_unique<Link>()) {
  link_->connection = connect(url, "import cannot connect");
  PGconn* c = link_->connection.get();
  exec(c, "BEGIN", PGRES_COMMAND_OK, "import cannot begin");
  // The fence: commit only while the lease taken for this import is still the current one.
  auto held = exec(c, "SELECT epoch FROM writer_lease WHERE id = 1 FOR SHARE", PGRES_TUPLES_OK, "import cannot read the lease");
  if (PQntuples(held.get()) != 1 || std::stoull(PQgetvalue(held.get(), 0, 0)) != epoch)
    throw std::runtime_error("the database lease moved while the import started: another accountsd took it");
  copy_out(c, "COPY accounts (id, email) TO STDOUT", [this](std::string_view line) {
    auto tab = line.find('\t');
    ids_.emplace(line.substr(0, tab));
    emails_.emplace(line.substr(tab + 1));  // emails are normalized: no characters COPY escapes
  });
  exec(c, (std::string("COPY accounts (") + kColumns + ") FROM STDIN").c_str(), PGRES_COPY_IN, "import cannot COPY");
  copying_ = true;
  buffer_.reserve(kSendBytes + 4096);
}

AccountImport::~AccountImport() {
  if (link_ && link_->connection) {
    if (copying_) PQputCopyEnd(link_->connection.get(), "import abandoned");
    PQfinish(link_->connection.release());  // an open transaction rolls back with the connection
  }
}

void AccountImport::add(const accounts::AccountRecord& record) {
  buffer_ += format_copy_line(record);
  if (buffer_.size() >= kSendBytes) flush();
}

void AccountImport::flush() {
  if (buffer_.empty()) return;
  PGconn* c = link_->connection.get();
  if (PQputCopyData(c, buffer_.data(), static_cast<int>(buffer_.size())) != 1)
    throw std::runtime_error(std::string("import COPY failed: ") + PQerrorMessage(c));
  buffer_.clear();
}

void AccountImport::commit() {
  PGconn* c = link_->connection.get();
  flush();
  copying_ = false;
  if (PQputCopyEnd(c, nullptr) != 1) throw std::runtime_error(std::string("import COPY failed: ") + PQerrorMessage(c));
  Result end(PQgetResult(c), &PQclear);
  if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(std::string("PostgreSQL refused the import (nothing was written): ") + PQerrorMessage(c));
  while (PGresult* rest = PQgetResult(c)) PQclear(rest);
  exec(c, "COMMIT", PGRES_COMMAND_OK, "import commit failed (nothing was written)");
  link_.reset();
}

void AccountImport::abort(const std::string& why) {
  if (!link_) return;
  if (copying_) PQputCopyEnd(link_->connection.get(), why.c_str());
  copying_ = false;
  link_.reset();  // the connection closes and the transaction rolls back
}

uint64_t export_accounts(const std::string& url, const std::function<void(const accounts::AccountRecord&)>& sink) {
  Connection c = connect(url, "export cannot connect");
  exec(c.get(), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "export cannot begin");
  uint64_t count = 0;
  copy_out(c.get(), std::string("COPY (SELECT ") + kColumns + " FROM accounts ORDER BY created_ms, id) TO STDOUT",
           [&](std::string_view line) {
             sink(parse_copy_line(line));
             ++count;
           });
  exec(c.get(), "COMMIT", PGRES_COMMAND_OK, "export cannot finish");
  return count;
}

}  // namespace db
