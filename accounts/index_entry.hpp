#pragma once
// What an account carries so that the id index (accounts/index.hpp) needs no node of its own: the
// index's list is intrusive, and every account is its own entry in it. Only AccountIndex touches
// these fields. This header brings in libcds' node types and nothing else of libcds.
#include <cds/gc/hp.h>
#include <cds/intrusive/details/michael_list_base.h>
#include <cds/intrusive/details/split_list_base.h>

#include <memory>

namespace accounts {

class Account;

// A link in a split-ordered list: the next pointer and the entry's bit-reversed hash (16 bytes).
using IndexLink = cds::intrusive::split_list::node<cds::intrusive::michael_list::node<cds::gc::HP>>;

// The key is the account's id (Account::id()), which never changes.
struct IdIndexEntry : IndexLink {
  // The index's reference to the account, taken at insertion and dropped by the index's disposer
  // once no hazard pointer guards the account any more.
  std::shared_ptr<Account> index_hold;
};

}  // namespace accounts
