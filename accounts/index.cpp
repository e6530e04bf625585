#include "accounts/index.hpp"

#include <cds/container/michael_list_hp.h>
#include <cds/container/split_list_map.h>
#include <cds/gc/hp.h>
#include <cds/init.h>

#include <functional>

namespace accounts {
namespace {

using AccountPtr = std::shared_ptr<Account>;

// A split-ordered list (Shalev and Shavit): one lock-free ordered list of every entry, sorted by
// the bit-reversed hash, with a bucket table of shortcuts into it. The table doubles as entries
// arrive, one bucket at a time and without moving an entry, so readers never wait for a resize.
// Its capacity is fixed at construction but costs only a table of segment pointers until used:
// 2^28 buckets take 128 KB up front, and segments of 16k buckets are allocated as the map grows.
constexpr size_t kMaxBuckets = size_t{1} << 28;
constexpr size_t kLoadFactor = 1;  // entries per bucket before the table doubles

template <class Key, class Hash>
struct MapTraits : cds::container::split_list::traits {
  typedef cds::container::michael_list_tag ordered_list;
  typedef Hash hash;
  typedef cds::atomicity::item_counter item_counter;
  struct ordered_list_traits : cds::container::michael_list::traits {
    typedef std::less<Key> less;
  };
};

template <class Key, class Hash>
using Map = cds::container::SplitListMap<cds::gc::HP, Key, AccountPtr, MapTraits<Key, Hash>>;

template <class M, class K>
AccountPtr lookup(M& map, const K& key) {
  AccountPtr found;
  map.find(key, [&found](auto& item) { found = item.second; });
  return found;
}

}  // namespace

struct AccountIndex::Maps {
  Maps() : ids(kMaxBuckets * kLoadFactor, kLoadFactor), emails(kMaxBuckets * kLoadFactor, kLoadFactor) {}
  Map<Uuid, UuidHash> ids;
  Map<std::string, std::hash<std::string>> emails;
};

AccountIndex::AccountIndex() : maps_(std::make_unique<Maps>()) {}

AccountIndex::~AccountIndex() = default;

std::shared_ptr<Account> AccountIndex::by_id(const Uuid& id) const { return lookup(maps_->ids, id); }

std::shared_ptr<Account> AccountIndex::by_email(const std::string& email) const {
  return lookup(maps_->emails, email);
}

bool AccountIndex::visit_id_impl(const Uuid& id, AccountRef use) const {
  return maps_->ids.find(id, [&use](auto& item) { use(*item.second); });
}

bool AccountIndex::visit_email_impl(const std::string& email, AccountRef use) const {
  return maps_->emails.find(email, [&use](auto& item) { use(*item.second); });
}

bool AccountIndex::insert_id(const Uuid& id, std::shared_ptr<Account> account) {
  return maps_->ids.insert(id, std::move(account));
}

bool AccountIndex::reserve_email(const std::string& email, std::shared_ptr<Account> account) {
  return maps_->emails.insert(email, std::move(account));
}

void AccountIndex::erase_id(const Uuid& id) { maps_->ids.erase(id); }

void AccountIndex::erase_email(const std::string& email) { maps_->emails.erase(email); }

std::vector<Uuid> AccountIndex::all_ids() const {
  std::vector<Uuid> ids;
  ids.reserve(maps_->ids.size());
  for (auto it = maps_->ids.begin(); it != maps_->ids.end(); ++it) ids.push_back(it->first);
  return ids;
}

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
