#pragma once
// Template part of db/rows.hpp.
#include <string>

namespace db {

template <class Quote>
std::string sql_values(const accounts::AccountRecord& r, Quote&& quote) {
  auto digest = [](const accounts::PendingToken& t) { return t.present() ? hex(t.digest) : std::string(); };
  std::string out = "('" + r.id.to_string() + "'," + quote(r.email) + ",'" + std::string(accounts::state_name(r.state)) +
                    "'," + quote(r.password_hash) + "," + std::to_string(r.created_ms) + "," +
                    std::to_string(r.updated_ms) + "," + std::to_string(r.confirmed_ms) + "," +
                    std::to_string(r.version) + ",'" + digest(r.confirm) + "'," + std::to_string(r.confirm.expires_ms) +
                    ",'" + digest(r.reset) + "'," + std::to_string(r.reset.expires_ms) + ")";
  return out;
}

}  // namespace db
