#pragma once
// Security events (docs/OPERATIONS.md, "What is logged"): failed AUTH, clients revoked by a reload,
// logins refused as LOCKED (per account and per address), lockouts, password resets and changes,
// deactivations and deletions. Each is one log line `audit: event=... client=... account=...
// address=...`; under journald it is a journal entry whose fields (ACCOUNTSD_EVENT,
// ACCOUNTSD_CLIENT, ACCOUNTSD_ACCOUNT, ACCOUNTSD_EMAIL, ACCOUNTSD_ADDRESS, ACCOUNTSD_PEER) can be
// filtered with journalctl. A password, token or secret is never among the fields.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/command_table.hpp"

namespace accountsd {

class Audit {
 public:
  Audit();  // journald when the daemon's stderr is the journal (JOURNAL_STREAM)
  using Fields = std::vector<std::pair<std::string_view, std::string>>;
  void event(std::string_view name, const Fields& fields);

 private:
  bool journald_;
};

// The audit events a reply stands for, if any: `command` with `args` answered `reply` for the
// client `client` connected from `peer`.
void audit_reply(Audit& audit, std::string_view command, protocol::Args args, const protocol::Reply& reply,
                 const std::string& client, const std::string& peer);

}  // namespace accountsd
