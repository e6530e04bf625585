#pragma once
// What an account carries for the id index (accounts/index.hpp): the index's slot points at the
// account itself, so there is no node per account, and the index's own reference to it lives
// here. Only AccountIndex touches it.
#include <memory>

namespace accounts {

class Account;

struct IdIndexEntry {
  // The index's reference to the account: taken when the account goes in, dropped once no reader
  // can still be looking at it after it was taken out (accounts/rcu.hpp).
  std::shared_ptr<Account> index_hold;
};

}  // namespace accounts
