#pragma once
// libpq COPY, shared by the warm-load and the import/export tools (db/*.cpp only: includes libpq).
#include <libpq-fe.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace db {

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Connects or throws std::runtime_error starting with `what`.
Connection connect(const std::string& url, const char* what);
// Runs `sql`; throws std::runtime_error starting with `what` unless the status is `expected`.
Result exec(PGconn* c, const char* sql, ExecStatusType expected, const char* what);
// Streams `COPY ... TO STDOUT`, calling `row` with each line (without its LF).
void copy_out(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& row);
// The same for `COPY ... TO STDOUT (FORMAT binary)`: checks the stream's header and trailer and
// calls `tuple` with each row's bytes, from its field count on.
void copy_out_binary(PGconn* c, const std::string& sql, const std::function<void(std::string_view)>& tuple);

}  // namespace db
