#include "accounts/index.hpp"

#include <sodium.h>

#include <cstring>
#include <new>
#include <stdexcept>
#include <string_view>

#include "accounts/account.hpp"
#include "accounts/rcu.hpp"
#include "accounts/rcu_table.hpp"

namespace accounts {
namespace {

// Both sets are RcuTables (accounts/rcu_table.hpp): a lookup loads a slot and the entry it names.
// The id set's slots point at the accounts themselves; the email set's at small entries that hold
// the address inline, since an account holds two addresses while CHANGE_EMAIL moves it.
//
// Keys are hashed with SipHash-2-4 (libsodium's crypto_shorthash) under a key drawn at start:
// addresses are chosen by whoever registers and ids may come from an import file, and nobody
// outside can make keys that pile up in one probe run.
class KeyedHash {
 public:
  KeyedHash() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
    randombytes_buf(key_, sizeof key_);
  }
  uint64_t operator()(const void* data, size_t size) const {
    uint64_t hash;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&hash), static_cast<const unsigned char*>(data), size, key_);
    return hash;
  }

 private:
  unsigned char key_[crypto_shorthash_KEYBYTES];
};

struct IdHashOf {
  KeyedHash keyed;
  uint64_t operator()(const Uuid& id) const { return keyed(id.bytes.data(), id.bytes.size()); }
  uint64_t operator()(const Account& a) const { return (*this)(a.id()); }
};

// Runs once no reader can still be looking at an account taken out of the id set: the index lets
// go of it (which may destroy it).
void drop_index_hold(void* account) { auto hold = std::move(static_cast<Account*>(account)->index_hold); }

// One reserved address: the account it belongs to, and the address itself, in one allocation
// (the bytes follow the struct).
struct EmailEntry {
  std::shared_ptr<Account> account;
  uint32_t size;

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), size}; }

  static EmailEntry* make(std::string_view email, std::shared_ptr<Account> account) {
    void* block = ::operator new(sizeof(EmailEntry) + email.size());
    auto* entry = new (block) EmailEntry{std::move(account), static_cast<uint32_t>(email.size())};
    std::memcpy(reinterpret_cast<char*>(entry + 1), email.data(), email.size());
    return entry;
  }
  static void destroy(void* entry) {
    static_cast<EmailEntry*>(entry)->~EmailEntry();
    ::operator delete(entry);
  }
};

struct EmailHashOf {
  KeyedHash keyed;
  uint64_t operator()(std::string_view email) const { return keyed(email.data(), email.size()); }
  uint64_t operator()(const EmailEntry& e) const { return (*this)(e.key()); }
};

}  // namespace

struct AccountIndex::Maps {
  IdHashOf id_hash;        // the same keys for the lookups and for the tables' rebuilds
  EmailHashOf email_hash;
  RcuTable<Account, IdHashOf> ids{id_hash};
  RcuTable<EmailEntry, EmailHashOf> emails{email_hash};
};

AccountIndex::AccountIndex() : maps_(std::make_unique<Maps>()) {}

AccountIndex::~AccountIndex() {
  // Nobody reads or writes any more. What is still in lets go of its accounts here; what was
  // taken out earlier waits in RCU's queue, which barrier() empties.
  maps_->ids.for_each([](Account& a) { drop_index_hold(&a); });
  maps_->emails.for_each([](EmailEntry& e) { EmailEntry::destroy(&e); });
  rcu::barrier();
}

namespace {
auto same_id(const Uuid& id) {
  return [&id](const Account& a) { return a.id() == id; };
}
auto same_email(std::string_view email) {
  return [email](const EmailEntry& e) { return e.key() == email; };
}
}  // namespace

std::shared_ptr<Account> AccountIndex::by_id(const Uuid& id) const {
  rcu::ReadLock reading;
  Account* a = maps_->ids.find(maps_->id_hash(id), same_id(id));
  return a != nullptr ? a->index_hold : nullptr;
}

std::shared_ptr<Account> AccountIndex::by_email(std::string_view email) const {
  rcu::ReadLock reading;
  EmailEntry* e = maps_->emails.find(maps_->email_hash(email), same_email(email));
  return e != nullptr ? e->account : nullptr;
}

uint64_t AccountIndex::read_ahead_id(const Uuid& id) const {
  uint64_t hash = maps_->id_hash(id);
  maps_->ids.prefetch_slots(hash);
  return hash;
}

const Account* AccountIndex::read_ahead_account(uint64_t hash) const { return maps_->ids.prefetch_entry(hash); }

uint64_t AccountIndex::read_ahead_email(std::string_view email) const {
  uint64_t hash = maps_->email_hash(email);
  maps_->emails.prefetch_slots(hash);
  return hash;
}

const void* AccountIndex::read_ahead_email_entry(uint64_t hash) const { return maps_->emails.prefetch_entry(hash); }

const Account* AccountIndex::read_ahead_email_account(const void* entry) {
  return static_cast<const EmailEntry*>(entry)->account.get();
}

bool AccountIndex::visit_id_impl(const Uuid& id, AccountRef use) const {
  rcu::ReadLock reading;
  Account* a = maps_->ids.find(maps_->id_hash(id), same_id(id));
  if (a == nullptr) return false;
  use(*a);
  return true;
}

bool AccountIndex::visit_email_impl(std::string_view email, AccountRef use) const {
  rcu::ReadLock reading;
  EmailEntry* e = maps_->emails.find(maps_->email_hash(email), same_email(email));
  if (e == nullptr) return false;
  use(*e->account);
  return true;
}

bool AccountIndex::insert_id(std::shared_ptr<Account> account) {
  const uint64_t hash = maps_->id_hash(account->id());
  return insert_id(std::move(account), hash);
}

bool AccountIndex::insert_id(std::shared_ptr<Account> account, uint64_t id_hash) {
  Account& a = *account;
  if (a.index_hold) return false;  // an account enters the id index once in its life
  a.index_hold = std::move(account);
  if (maps_->ids.insert(&a, id_hash, same_id(a.id()))) return true;
  auto hold = std::move(a.index_hold);  // not in: nobody else can see the fields
  return false;
}

bool AccountIndex::reserve_email(std::string_view email, std::shared_ptr<Account> account) {
  return reserve_email(email, std::move(account), maps_->email_hash(email));
}

bool AccountIndex::reserve_email(std::string_view email, std::shared_ptr<Account> account, uint64_t email_hash) {
  EmailEntry* entry = EmailEntry::make(email, std::move(account));
  if (maps_->emails.insert(entry, email_hash, same_email(email))) return true;
  EmailEntry::destroy(entry);  // never in
  return false;
}

AccountIndex::Hashes AccountIndex::prefetch_insert(const Uuid& id, std::string_view email) const {
  Hashes h{maps_->id_hash(id), maps_->email_hash(email)};
  maps_->ids.prefetch_insert(h.id);
  maps_->emails.prefetch_insert(h.email);
  return h;
}

void AccountIndex::erase_id(const Uuid& id) {
  if (Account* a = maps_->ids.erase(maps_->id_hash(id), same_id(id))) rcu::defer(&drop_index_hold, a);
}

void AccountIndex::erase_email(std::string_view email) {
  if (EmailEntry* e = maps_->emails.erase(maps_->email_hash(email), same_email(email)))
    rcu::defer(&EmailEntry::destroy, e);
}

void AccountIndex::reserve(size_t accounts) {
  maps_->ids.reserve(accounts);
  maps_->emails.reserve(accounts);
}

void AccountIndex::trim() {
  maps_->ids.trim();
  maps_->emails.trim();
}

std::vector<Uuid> AccountIndex::all_ids() const {
  std::vector<Uuid> ids;
  ids.reserve(maps_->ids.size());
  maps_->ids.for_each([&ids](const Account& a) { ids.push_back(a.id()); });
  return ids;
}

size_t AccountIndex::id_count() const { return maps_->ids.size(); }
size_t AccountIndex::email_count() const { return maps_->emails.size(); }

IndexRuntime::IndexRuntime() { rcu::register_thread(); }

IndexRuntime::~IndexRuntime() {
  rcu::barrier();
  rcu::unregister_thread();
}

IndexThread::IndexThread() { rcu::register_thread(); }
IndexThread::~IndexThread() { rcu::unregister_thread(); }

}  // namespace accounts
