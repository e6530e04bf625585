#pragma once
// The account command family: its entries for the command table (name, arity, flags, usage) and
// the handlers, which call AccountService. The daemon adds these to its table at start-up.
#include <asio/awaitable.hpp>
#include <functional>
#include <vector>

#include "protocol/command_table.hpp"

namespace accounts {

class AccountService;

using Handler = std::function<asio::awaitable<protocol::Reply>(protocol::Args)>;

struct Command {
  protocol::CommandSpec spec;
  Handler handler;
};

std::vector<Command> account_commands(AccountService& service);

}  // namespace accounts
