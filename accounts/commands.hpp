#pragma once
// The account command family: its entries for the command table (name, arity, flags, usage) and
// the handlers, which call AccountService. The daemon adds these to its table at start-up.
#include <asio/awaitable.hpp>
#include <functional>
#include <string_view>
#include <vector>

#include "protocol/command_table.hpp"

namespace accounts {

class AccountService;

using Handler = std::function<asio::awaitable<protocol::Reply>(protocol::Args)>;
// A command that never waits answers at once: no coroutine frame, no resumption (the reads).
using Immediate = std::function<protocol::Reply(protocol::Args)>;

struct Command {
  protocol::CommandSpec spec;
  Handler handler;  // empty when `immediate` answers
  Immediate immediate = {};
  // Optional: the read-ahead for pipelined batches (AccountService::read_ahead_get, _find and _whoami).
  std::function<void(std::string_view)> read_ahead = {};
};

std::vector<Command> account_commands(AccountService& service);

}  // namespace accounts
