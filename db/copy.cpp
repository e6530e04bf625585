#include "db/copy.hpp"

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

void copy_out(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& row) {
  exec(c, sql.c_str(), PGRES_COPY_OUT, "COPY failed");
  while (true) {
    char* buffer = nullptr;
    int n = PQgetCopyData(c, &buffer, 0);
    if (n == -1) break;  // done
    if (n == -2) throw std::runtime_error(std::string("COPY failed: ") + PQerrorMessage(c));
    std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, &PQfreemem);
    std::string_view line(buffer, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    row(line);
  }
  Result end(PQgetResult(c), &PQclear);
  if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
    throw std::runtime_error(std::string("COPY failed: ") + PQerrorMessage(c));
}

}  // namespace db
