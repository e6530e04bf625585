#include "accounts/session.hpp"

#include <cds/intrusive/feldman_hashset_hp.h>
#include <cds/gc/hp.h>

#include <algorithm>

#include "accounts/account.hpp"

namespace accounts {

Session::Session(Uuid id, const TokenDigest& digest, std::shared_ptr<Account> account, int64_t created_ms,
                 int64_t expires_ms, int64_t last_used_ms, std::string_view label, std::string_view source)
    : id(id),
      digest(digest),
      account(std::move(account)),
      created_ms(created_ms),
      expires_ms(expires_ms),
      used_s_(0),
      persisted_s_(0) {
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

static_assert(sizeof(Session) <= 104, "a session should fit a 112-byte allocation");

SessionRow row_of(const Session& s) {
  return SessionRow{s.id,         s.account->record().id, s.digest,
                    s.created_ms, s.last_used_ms(),  s.expires_ms,
                    std::string(s.label()), std::string(s.source())};
}

namespace {

struct DigestOf {
  const TokenDigest& operator()(const Session& s) const { return s.digest; }
};

// libcds 2.3.3 allocates each FeldmanHashSet array node together with its slots, but frees it as
// one bare node: a sized delete of the wrong size (ASan: new-delete-type-mismatch). Freeing
// without a size frees exactly what was allocated.
template <class T>
struct UnsizedAllocator {
  using value_type = T;
  UnsizedAllocator() = default;
  template <class U>
  UnsizedAllocator(const UnsizedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, size_t) { ::operator delete(p); }
  template <class U>
  struct rebind {
    using other = UnsizedAllocator<U>;
  };
  bool operator==(const UnsizedAllocator&) const { return true; }
};

// A 2^16-slot head array keeps the trie shallow at millions of sessions (512 KiB, once).
constexpr size_t kHeadBits = 16;
constexpr size_t kArrayBits = 4;

}  // namespace

// Intrusive: the trie's slots point at the sessions themselves, with no node in between (one
// cache miss less per WHOAMI, and 32 bytes less per session). The set holds one reference to each
// session it contains; the disposer drops it once no hazard pointer protects the session any more.
struct SessionIndex::Set {
  struct Disposer {
    void operator()(Session* s) const { SessionIndex::release(s); }
  };
  struct Traits : cds::intrusive::feldman_hashset::traits {
    typedef DigestOf hash_accessor;
    typedef cds::atomicity::item_counter item_counter;
    typedef UnsizedAllocator<int> node_allocator;
    typedef Disposer disposer;
  };
  Set() : set(kHeadBits, kArrayBits) {}
  cds::intrusive::FeldmanHashSet<cds::gc::HP, Session, Traits> set;
};

void SessionIndex::retain(Session* s) { s->retain(); }
void SessionIndex::release(Session* s) { s->release(); }

SessionIndex::SessionIndex() : set_(std::make_unique<Set>()) {}
SessionIndex::~SessionIndex() = default;

SessionRef SessionIndex::find(const TokenDigest& digest) const {
  SessionRef found;
  set_->set.find(digest, [&found](Session& s) { found = SessionRef(&s); });  // s is guarded meanwhile
  return found;
}

bool SessionIndex::visit_impl(const TokenDigest& digest, SessionUse use) const {
  return set_->set.find(digest, [&use](Session& s) { use(s); });
}

bool SessionIndex::insert(SessionRef session) {
  Session* s = session.get();
  retain(s);  // the set's reference
  if (set_->set.insert(*s)) return true;
  release(s);
  return false;
}

void SessionIndex::erase(const TokenDigest& digest) { set_->set.erase(digest); }

size_t SessionIndex::size() const { return set_->set.size(); }

struct SessionIndex::Cursor::State {
  using Iterator = decltype(std::declval<Set&>().set.begin());
  Set& set;
  Iterator at;
  bool started = false;
};

SessionIndex::Cursor::Cursor(SessionIndex& index) : state_(std::make_unique<State>(State{*index.set_, {}})) {}
SessionIndex::Cursor::~Cursor() = default;

void SessionIndex::Cursor::visit(size_t max, const std::function<void(const SessionRef&)>& each) {
  auto& set = state_->set.set;
  if (!state_->started || state_->at == set.end()) {
    state_->at = set.begin();
    state_->started = true;
  }
  for (size_t n = 0; n < max && state_->at != set.end(); ++n, ++state_->at) each(SessionRef(&*state_->at));
}

}  // namespace accounts
