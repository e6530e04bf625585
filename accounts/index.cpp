#include "accounts/index.hpp"

#include <cds/gc/hp.h>
#include <cds/init.h>
#include <cds/intrusive/michael_list_hp.h>
#include <cds/intrusive/split_list.h>

#include <cstring>
#include <functional>
#include <new>
#include <string_view>

#include "accounts/account.hpp"

namespace accounts {
namespace {

// Split-ordered lists (Shalev and Shavit): one lock-free ordered list of every entry, sorted by
// the bit-reversed hash, with a bucket table of shortcuts into it. The table doubles as entries
// arrive, one bucket at a time and without moving an entry, so readers never wait for a resize.
// Its capacity is fixed at construction but costs only a table of segment pointers until used:
// 2^28 buckets take 128 KB up front, and segments of buckets are allocated as the set grows.
//
// Both lists are intrusive, so a lookup reaches its entry with one dependent load fewer: the id
// list links the accounts themselves (IdIndexEntry), and the email list links small entries that
// hold the address inline.
constexpr size_t kMaxBuckets = size_t{1} << 28;
constexpr size_t kLoadFactor = 1;  // entries per bucket before the table doubles

namespace ci = cds::intrusive;

int compare_ids(const Uuid& a, const Uuid& b) { return std::memcmp(a.bytes.data(), b.bytes.data(), a.bytes.size()); }

struct IdHash {
  size_t operator()(const Uuid& id) const { return UuidHash()(id); }
  size_t operator()(const Account& a) const { return UuidHash()(a.id()); }
};
struct IdCompare {
  int operator()(const Account& a, const Account& b) const { return compare_ids(a.id(), b.id()); }
  int operator()(const Account& a, const Uuid& b) const { return compare_ids(a.id(), b); }
  int operator()(const Uuid& a, const Account& b) const { return compare_ids(a, b.id()); }
};
// Runs once no hazard pointer guards a removed account: the index lets go of it.
struct IdDisposer {
  void operator()(Account* a) const {
    auto hold = std::move(a->index_hold);  // may destroy the account, after this member is empty
  }
};

// An intrusive split-ordered set of T, linked through T's IndexLink base.
template <class T, class Hash, class Compare, class Disposer>
using IntrusiveSet = ci::SplitListSet<
    cds::gc::HP,
    ci::MichaelList<cds::gc::HP, T,
                    typename ci::michael_list::make_traits<
                        ci::opt::hook<ci::michael_list::base_hook<cds::opt::gc<cds::gc::HP>>>,
                        cds::opt::compare<Compare>, ci::opt::disposer<Disposer>>::type>,
    typename ci::split_list::make_traits<cds::opt::hash<Hash>,
                                         cds::opt::item_counter<cds::atomicity::item_counter>>::type>;

using IdSet = IntrusiveSet<Account, IdHash, IdCompare, IdDisposer>;

// One reserved address: its link, the account it belongs to, and the address itself, in one
// allocation (the bytes follow the struct).
struct EmailEntry : IndexLink {
  std::shared_ptr<Account> account;
  uint32_t size;

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), size}; }

  static EmailEntry* make(std::string_view email, std::shared_ptr<Account> account) {
    void* block = ::operator new(sizeof(EmailEntry) + email.size());
    auto* entry = new (block) EmailEntry();
    entry->account = std::move(account);
    entry->size = static_cast<uint32_t>(email.size());
    std::memcpy(reinterpret_cast<char*>(entry + 1), email.data(), email.size());
    return entry;
  }
  static void destroy(EmailEntry* entry) {
    entry->~EmailEntry();
    ::operator delete(entry);
  }
};

struct EmailHash {
  size_t operator()(std::string_view email) const { return std::hash<std::string_view>()(email); }
  size_t operator()(const EmailEntry& e) const { return (*this)(e.key()); }
};
struct EmailCompare {
  int operator()(const EmailEntry& a, const EmailEntry& b) const { return a.key().compare(b.key()); }
  int operator()(const EmailEntry& a, std::string_view b) const { return a.key().compare(b); }
  int operator()(std::string_view a, const EmailEntry& b) const { return a.compare(b.key()); }
};
struct EmailDisposer {
  void operator()(EmailEntry* e) const { EmailEntry::destroy(e); }
};

using EmailSet = IntrusiveSet<EmailEntry, EmailHash, EmailCompare, EmailDisposer>;

}  // namespace

struct AccountIndex::Maps {
  Maps() : ids(kMaxBuckets * kLoadFactor, kLoadFactor), emails(kMaxBuckets * kLoadFactor, kLoadFactor) {}
  IdSet ids;
  EmailSet emails;
};

AccountIndex::AccountIndex() : maps_(std::make_unique<Maps>()) {}

AccountIndex::~AccountIndex() = default;

std::shared_ptr<Account> AccountIndex::by_id(const Uuid& id) const {
  std::shared_ptr<Account> found;
  maps_->ids.find(id, [&found](Account& a, const Uuid&) { found = a.index_hold; });  // a is guarded meanwhile
  return found;
}

std::shared_ptr<Account> AccountIndex::by_email(std::string_view email) const {
  std::shared_ptr<Account> found;
  maps_->emails.find(email, [&found](EmailEntry& e, std::string_view) { found = e.account; });
  return found;
}

bool AccountIndex::visit_id_impl(const Uuid& id, AccountRef use) const {
  return maps_->ids.find(id, [&use](Account& a, const Uuid&) { use(a); });
}

bool AccountIndex::visit_email_impl(std::string_view email, AccountRef use) const {
  return maps_->emails.find(email, [&use](EmailEntry& e, std::string_view) { use(*e.account); });
}

bool AccountIndex::insert_id(std::shared_ptr<Account> account) {
  Account& a = *account;
  if (a.index_hold) return false;  // an account enters the id index once in its life
  a.index_hold = std::move(account);
  if (maps_->ids.insert(a)) return true;
  auto hold = std::move(a.index_hold);  // not linked: nobody else can see the fields
  return false;
}

bool AccountIndex::reserve_email(std::string_view email, std::shared_ptr<Account> account) {
  EmailEntry* entry = EmailEntry::make(email, std::move(account));
  if (maps_->emails.insert(*entry)) return true;
  EmailEntry::destroy(entry);  // never linked
  return false;
}

void AccountIndex::erase_id(const Uuid& id) { maps_->ids.erase(id); }

void AccountIndex::erase_email(std::string_view email) { maps_->emails.erase(email); }

std::vector<Uuid> AccountIndex::all_ids() const {
  std::vector<Uuid> ids;
  ids.reserve(maps_->ids.size());
  for (auto it = maps_->ids.begin(); it != maps_->ids.end(); ++it) ids.push_back(it->id());
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
