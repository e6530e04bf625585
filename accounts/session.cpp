#include "accounts/session.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "accounts/account.hpp"
#include "accounts/rcu.hpp"
#include "accounts/rcu_table.hpp"

namespace accounts {

Session::Session(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
                 int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source)
    : key(session_key(digest)),
      id(id),
      owner_(account.get()),
      created_ms(created_ms),
      expires_ms(expires_ms),
      used_s_(0),
      account(std::move(account)),
      persisted_s_(0) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(Session, source_size_) < 64 && offsetof(Session, account) == 64,
                "what a check reads fills the first line, and only that");
#pragma GCC diagnostic pop
  used(last_used_ms);
  persisted(last_used_ms);
  label = label.substr(0, 255);
  source = source.substr(0, 255);
  if (label.empty() && source.empty()) return;
  label_size_ = static_cast<uint8_t>(label.size());
  source_size_ = static_cast<uint8_t>(source.size());
  extras_ = std::make_unique<char[]>(label.size() + source.size());
  std::copy(label.begin(), label.end(), extras_.get());
  std::copy(source.begin(), source.end(), extras_.get() + label.size());
}

SessionRef Session::make(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
                         int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source) {
  return SessionRef(new Session(id, digest, std::move(account), created_ms, expires_ms, last_used_ms, label, source));
}

static_assert(sizeof(Session) == 128, "a session is two cache lines");

SessionRow row_of(const Session& s, const TokenDigest& digest) {
  return SessionRow{s.id,         s.account->record().id, digest,
                    s.created_ms, s.last_used_ms(),  s.expires_ms,
                    std::string(s.label()), std::string(s.source())};
}

namespace {

// A key is half of SHA-256 (or, stored before schema 5, BLAKE2b) of 256 random bits: its first 8
// bytes are as good a hash as any.
struct KeyHash {
  uint64_t operator()(const SessionKey& key) const {
    uint64_t h;
    std::memcpy(&h, key.data(), sizeof h);
    return h;
  }
  uint64_t operator()(const Session& s) const { return (*this)(s.key); }
};

auto same_key_as(const SessionKey& key) {
  return [&key](const Session& s) { return s.key == key; };
}

}  // namespace

// The table's slots point at the sessions themselves (no node in between). The index holds one
// reference to each session it contains, and drops it once no reader can still be looking at it.
struct SessionIndex::Set {
  KeyHash hash;
  RcuTable<Session, KeyHash> table{hash};
};

void SessionIndex::retain(Session* s) { s->retain(); }
void SessionIndex::release(Session* s) { s->release(); }

SessionIndex::SessionIndex() : set_(std::make_unique<Set>()) {}

SessionIndex::~SessionIndex() {
  set_->table.for_each([](Session& s) { release(&s); });
  rcu::barrier();
}

SessionRef SessionIndex::find(const SessionKey& key) const {
  rcu::ReadLock reading;
  return SessionRef(set_->table.find(set_->hash(key), same_key_as(key)));
}

bool SessionIndex::visit_impl(const SessionKey& key, SessionUse use) const {
  rcu::ReadLock reading;
  Session* s = set_->table.find(set_->hash(key), same_key_as(key));
  if (s == nullptr) return false;
  use(*s);
  return true;
}

uint64_t SessionIndex::read_ahead(const SessionKey& key) const {
  uint64_t hash = set_->hash(key);
  set_->table.prefetch_slots(hash);
  return hash;
}

const Session* SessionIndex::read_ahead_session(uint64_t hash) const { return set_->table.prefetch_entry(hash); }

bool SessionIndex::insert(SessionRef session) {
  Session* s = session.get();
  retain(s);  // the index's reference
  if (set_->table.insert(s, set_->hash(s->key), same_key_as(s->key))) return true;
  release(s);
  return false;
}

void SessionIndex::erase(const SessionKey& key) {
  // The index's reference goes once no reader can still be looking at the session.
  if (Session* s = set_->table.erase(set_->hash(key), same_key_as(key)))
    rcu::defer([](void* taken) { release(static_cast<Session*>(taken)); }, s);
}

size_t SessionIndex::size() const { return set_->table.size(); }

void SessionIndex::prefetch_insert(const SessionKey& key) const { set_->table.prefetch_insert(set_->hash(key)); }

void SessionIndex::reserve(size_t sessions) { set_->table.reserve(sessions); }

void SessionIndex::trim() { set_->table.trim(); }

struct SessionIndex::Cursor::State {
  Set& set;
  RcuTable<Session, KeyHash>::Cursor at;
};

SessionIndex::Cursor::Cursor(SessionIndex& index) : state_(std::make_unique<State>(State{*index.set_, {}})) {}
SessionIndex::Cursor::~Cursor() = default;

void SessionIndex::Cursor::visit(size_t max, const std::function<void(const SessionRef&)>& each) {
  rcu::ReadLock reading;  // the index's reference keeps each session alive until it ends
  state_->set.table.step(state_->at, max, [&each](Session& s) { each(SessionRef(&s)); });
}

}  // namespace accounts
