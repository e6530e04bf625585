#include "daemon/audit.hpp"

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>

#include <cstdlib>

namespace accountsd {
namespace {

std::string upper(std::string_view key) {
  std::string out = "ACCOUNTSD_";
  for (char c : key) out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return out;
}

// A field value fit for one log line: no spaces or control characters can forge another field.
std::string clean(std::string_view value) {
  std::string out;
  for (char c : value.substr(0, 200)) out += (static_cast<unsigned char>(c) <= ' ' || c == '"') ? '_' : c;
  return out.empty() ? "-" : out;
}

std::string reply_field(const protocol::Reply& reply, std::string_view key) {
  const std::string& line = reply.line();
  // Appended, not `" " + std::string(key)`: g++ 12 warns falsely about that form (GCC bugs 105329
  // and 105651; tests/CMakeLists.txt), and the daemon builds without a warning.
  std::string needle = " ";
  needle.append(key).append("=");
  auto at = line.find(needle);
  if (at == std::string::npos) return {};
  at += needle.size();
  return line.substr(at, line.find(' ', at) - at);
}

}  // namespace

Audit::Audit() : journald_(std::getenv("JOURNAL_STREAM") != nullptr) {}

accounts::LogLimiter& Audit::limiter(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = limiters_.find(name);
  if (it == limiters_.end())
    it = limiters_.emplace(std::string(name), std::make_unique<accounts::LogLimiter>(kPerSecond)).first;
  return *it->second;
}

void Audit::event(std::string_view name, const Fields& fields) {
  uint64_t suppressed = 0;
  if (!limiter(name).allow(suppressed)) return;
  std::string line = "audit: event=";
  line += name;
  for (const auto& [key, value] : fields) line.append(" ").append(key).append("=").append(clean(value));
  if (suppressed > 0) line.append(" suppressed=").append(std::to_string(suppressed));
  if (!journald_) {
    spdlog::info("{}", line);
    return;
  }
  std::vector<std::string> entries = {"MESSAGE=" + line, "PRIORITY=5", "SYSLOG_IDENTIFIER=accountsd",
                                      "ACCOUNTSD_EVENT=" + std::string(name)};
  for (const auto& [key, value] : fields) entries.push_back(upper(key) + "=" + clean(value));
  if (suppressed > 0) entries.push_back("ACCOUNTSD_SUPPRESSED=" + std::to_string(suppressed));
  std::vector<iovec> vectors;
  for (auto& e : entries) vectors.push_back(iovec{e.data(), e.size()});
  sd_journal_sendv(vectors.data(), static_cast<int>(vectors.size()));
}

void audit_reply(Audit& audit, std::string_view command, protocol::Args args, const protocol::Reply& reply,
                 const std::string& client, const std::string& peer) {
  auto with = [&](Audit::Fields fields) {
    fields.emplace_back("client", client);
    fields.emplace_back("peer", peer);
    return fields;
  };
  bool login = command == "LOGIN" || command == "LOGIN_SESSION";
  if (!reply.is_ok() && reply.code() == protocol::Error::invalid_credentials &&
      reply.line().find("now locked out") != std::string::npos) {
    std::string source = login ? (args.size() > 2 ? args[2] : "") : (args.size() > 3 ? args[3] : "");
    audit.event("lockout", with({{login ? "email" : "account", args.empty() ? "" : args[0]}, {"address", source}}));
    return;
  }
  if (!reply.is_ok()) {
    if (reply.code() != protocol::Error::locked) return;
    // LOGIN <email> <password> [<source>]; CHANGE_PASSWORD <id> <old> <new> [<source>]
    std::string source = login ? (args.size() > 2 ? args[2] : "") : (args.size() > 3 ? args[3] : "");
    bool by_address = reply.line().find("from this address") != std::string::npos;
    if (login)
      audit.event(by_address ? "address_throttled" : "login_locked",
                  with({{"email", args.empty() ? "" : args[0]}, {"address", source}}));
    else if (command == "CHANGE_PASSWORD")
      audit.event(by_address ? "address_throttled" : "login_locked",
                  with({{"account", args.empty() ? "" : args[0]}, {"address", source}}));
    return;
  }
  std::string_view event;
  if (command == "RESET_REQUEST") event = "password_reset_requested";
  else if (command == "RESET_PASSWORD") event = "password_reset";
  else if (command == "CHANGE_PASSWORD") event = "password_changed";
  else if (command == "CHANGE_EMAIL") event = "email_changed";
  else if (command == "DEACTIVATE") event = "account_deactivated";
  else if (command == "REACTIVATE") event = "account_reactivated";
  else if (command == "DELETE") event = "account_deleted";
  else if (command == "LOGOUT_ALL") event = "sessions_revoked";
  else return;
  std::string address = command == "CHANGE_PASSWORD" && args.size() > 3 ? args[3] : "";
  std::string account = reply_field(reply, "id");
  if (account.empty() && command != "RESET_REQUEST" && !args.empty()) account = args[0];
  audit.event(event, with({{"account", account}, {"address", address}}));
}

}  // namespace accountsd
