#include "accounts/index.hpp"

#include <cds/container/michael_kvlist_hp.h>
#include <cds/container/michael_map.h>
#include <cds/gc/hp.h>
#include <cds/init.h>

#include <functional>

namespace accounts {
namespace {

using AccountPtr = std::shared_ptr<Account>;

template <class Key>
struct ListTraits : cds::container::michael_list::traits {
  typedef std::less<Key> less;
};

template <class Hash>
struct MapTraits : cds::container::michael_map::traits {
  typedef Hash hash;
  typedef cds::atomicity::item_counter item_counter;
};

template <class Key, class Hash>
using Map = cds::container::MichaelHashMap<
    cds::gc::HP, cds::container::MichaelKVList<cds::gc::HP, Key, AccountPtr, ListTraits<Key>>,
    MapTraits<Hash>>;

template <class M, class K>
AccountPtr lookup(M& map, const K& key) {
  AccountPtr found;
  map.find(key, [&found](auto& item) { found = item.second; });
  return found;
}

}  // namespace

struct AccountIndex::Maps {
  explicit Maps(size_t expected) : ids(expected, 1), emails(expected, 1) {}
  Map<Uuid, UuidHash> ids;
  Map<std::string, std::hash<std::string>> emails;
};

AccountIndex::AccountIndex(size_t expected_accounts)
    : maps_(std::make_unique<Maps>(expected_accounts < 1024 ? 1024 : expected_accounts)) {}

AccountIndex::~AccountIndex() = default;

std::shared_ptr<Account> AccountIndex::by_id(const Uuid& id) const { return lookup(maps_->ids, id); }

std::shared_ptr<Account> AccountIndex::by_email(const std::string& email) const {
  return lookup(maps_->emails, email);
}

bool AccountIndex::insert_id(const Uuid& id, std::shared_ptr<Account> account) {
  return maps_->ids.insert(id, std::move(account));
}

bool AccountIndex::reserve_email(const std::string& email, std::shared_ptr<Account> account) {
  return maps_->emails.insert(email, std::move(account));
}

void AccountIndex::erase_id(const Uuid& id) { maps_->ids.erase(id); }

void AccountIndex::erase_email(const std::string& email) { maps_->emails.erase(email); }

size_t AccountIndex::id_count() const { return maps_->ids.size(); }
size_t AccountIndex::email_count() const { return maps_->emails.size(); }

namespace {
std::unique_ptr<cds::gc::HP> hazard_pointers;
}

IndexRuntime::IndexRuntime(size_t max_threads) {
  cds::Initialize();
  hazard_pointers = std::make_unique<cds::gc::HP>(0, max_threads);
  cds::threading::Manager::attachThread();
}

IndexRuntime::~IndexRuntime() {
  cds::threading::Manager::detachThread();
  hazard_pointers.reset();
  cds::Terminate();
}

IndexThread::IndexThread() { cds::threading::Manager::attachThread(); }
IndexThread::~IndexThread() { cds::threading::Manager::detachThread(); }

}  // namespace accounts
