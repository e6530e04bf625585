#pragma once
// Security events (docs/OPERATIONS.md, "What is logged"): failed AUTH, clients revoked by a reload,
// logins refused as LOCKED (per account and per address), lockouts, password resets and changes,
// deactivations and deletions. Each is one log line `audit: event=... client=... account=...
// address=...`; under journald it is a journal entry whose fields (ACCOUNTSD_EVENT,
// ACCOUNTSD_CLIENT, ACCOUNTSD_ACCOUNT, ACCOUNTSD_EMAIL, ACCOUNTSD_ADDRESS, ACCOUNTSD_PEER) can be
// filtered with journalctl. A password, token or secret is never among the fields.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accounts/log_limiter.hpp"
#include "protocol/command_table.hpp"

namespace accountsd {

// Events a client can cause at will (a failed AUTH, a LOCKED login) are bounded like every other
// such log line: at most kPerSecond of each event a second, and the next one written carries
// `suppressed=N` for those left out in between.
class Audit {
 public:
  Audit();  // journald when the daemon's stderr is the journal (JOURNAL_STREAM)
  using Fields = std::vector<std::pair<std::string_view, std::string>>;
  void event(std::string_view name, const Fields& fields);
  static constexpr uint32_t kPerSecond = 100;

 private:
  accounts::LogLimiter& limiter(std::string_view name);
  bool journald_;
  std::mutex mutex_;  // guards limiters_
  std::map<std::string, std::unique_ptr<accounts::LogLimiter>, std::less<>> limiters_;
};

// The audit events a reply stands for, if any: `command` with `args` answered `reply` for the
// client `client` connected from `peer`.
void audit_reply(Audit& audit, std::string_view command, protocol::Args args, const protocol::Reply& reply,
                 const std::string& client, const std::string& peer);

}  // namespace accountsd
