// Read-ahead for pipelined reads. A lookup is a chain of dependent cache misses: a GET the slot,
// then the account; a FIND the slot, the address entry, then the account; a WHOAMI the slot, the
// session, then the account. Run one request after the other and a batch of sixteen WHOAMIs waits
// for forty-eight misses in a row. The daemon instead shows the service the GET, FIND and WHOAMI
// lines of a batch before it runs the first (read_ahead_get, _find, _whoami): each starts
// fetching its first slot line. The first lookup of the batch then walks the chains one link at a
// time for all of them together (settle_read_ahead), so that the batch waits for about three
// misses, not forty-eight. Valkey 8 does the same for its batches (src/memory_prefetch.c). A
// line that came alone is a batch of one: its slot line is on its way while the request is parsed
// and checked, before its lookup starts.
//
// Nothing here decides anything. The links are guesses (a slot's tag may match another key) and
// only their memory is fetched; every request still runs its own lookup, under its own RCU read,
// and gets the same reply it would get without this. The one thing carried over is a WHOAMI
// token's digest, which costs 150 ns to compute: the lookup takes it from here only after
// comparing the whole token in constant time, and a batch's tokens are wiped when the next batch
// starts. The state is per thread: a connection runs its batch on its loop's thread. When a batch
// waits for a change and another connection's batch runs meanwhile, the two share the places
// here or the second starts afresh; either way a lookup that finds nothing digests again. Any
// lookup settles a batch, so a batch that is never run (its connection closed) holds nothing
// back for long.
#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "accounts/account.hpp"
#include "accounts/email.hpp"
#include "accounts/index.hpp"
#include "accounts/rcu.hpp"
#include "accounts/service.hpp"
#include "accounts/session.hpp"

namespace accounts {

namespace {

constexpr size_t kTokenBytes = 43;

struct Pending {
  enum class Kind : uint8_t { account, email, session } kind;
  uint64_t hash;
  TokenDigest digest;               // sessions: the token's
  std::array<char, kTokenBytes> token;  // sessions: the token itself, to match the lookup with
};

struct Batch {
  std::array<Pending, 32> pending;
  size_t size = 0;
  size_t next = 0;       // where the next token lookup looks first (they come in order)
  bool settled = false;  // the chains were walked: the next read-ahead starts a new batch

  void start_if_done() {
    if (!settled) return;
    sodium_memzero(pending.data(), sizeof(Pending) * size);
    size = next = 0;
    settled = false;
  }
};

thread_local Batch batch;

// The whole token in constant time: no branch depends on where two tokens differ, only the one
// answer at the end. Inline, sixteen bytes at a time (the last load overlaps the second); it was
// two calls into libsodium (crypto_verify_32 and _16), 12 ns of a WHOAMI at P=16.
bool same_token(const char* a, const char* b) {
  static_assert(kTokenBytes > 32 && kTokenBytes <= 48);
  constexpr size_t kTail = kTokenBytes - 16;
#if defined(__SSE2__)
  auto differ = [](const char* x, const char* y) {
    return _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(y)));
  };
  const __m128i bits = _mm_or_si128(_mm_or_si128(differ(a, b), differ(a + 16, b + 16)), differ(a + kTail, b + kTail));
  return _mm_movemask_epi8(_mm_cmpeq_epi8(bits, _mm_setzero_si128())) == 0xffff;
#else
  const auto* x = reinterpret_cast<const unsigned char*>(a);
  const auto* y = reinterpret_cast<const unsigned char*>(b);
  return (crypto_verify_32(x, y) | crypto_verify_16(x + kTail, y + kTail)) == 0;
#endif
}

// Every line an object touches, on its way into the cache, from the line it starts in: an account
// spans a few.
void prefetch_lines(const void* object, size_t bytes) {
  const auto start = reinterpret_cast<uintptr_t>(object);
  for (uintptr_t line = start & ~uintptr_t{63}; line < start + bytes; line += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(line));
}

}  // namespace

void AccountService::read_ahead_get(std::string_view id_text) const {
  batch.start_if_done();
  if (batch.size == batch.pending.size()) return;
  auto id = Uuid::parse(id_text);
  if (!id) return;
  Pending& p = batch.pending[batch.size++];
  p.kind = Pending::Kind::account;
  p.hash = index_->read_ahead_id(*id);
}

// An address is looked up as check_email() normalizes it, which for one it accepts is the address
// with ASCII lower-cased; one it rejects only costs a fetch.
void AccountService::read_ahead_find(std::string_view email) const {
  batch.start_if_done();
  constexpr size_t kLongest = 254;  // check_email's limit
  if (batch.size == batch.pending.size() || email.size() > kLongest) return;
  char lower[kLongest];
  for (size_t i = 0; i < email.size(); ++i) lower[i] = fold_email_char(email[i]);
  Pending& p = batch.pending[batch.size++];
  p.kind = Pending::Kind::email;
  p.hash = index_->read_ahead_email({lower, email.size()});
}

void AccountService::read_ahead_whoami(std::string_view token) const {
  batch.start_if_done();
  if (batch.size == batch.pending.size() || token.size() != kTokenBytes) return;
  Pending& p = batch.pending[batch.size++];
  p.kind = Pending::Kind::session;
  p.digest = session_digest(token);
  std::memcpy(p.token.data(), token.data(), kTokenBytes);
  p.hash = sessions_.read_ahead(session_key(p.digest));
}

void AccountService::settle_read_ahead() const {
  if (batch.settled || batch.size == 0) return;
  batch.settled = true;
  rcu::ReadLock reading;
  std::array<const void*, std::tuple_size_v<decltype(batch.pending)>> entries{};
  // Second link: the entries the slots name (for a GET the account itself).
  for (size_t i = 0; i < batch.size; ++i) {
    const Pending& p = batch.pending[i];
    switch (p.kind) {
      case Pending::Kind::account:
        if (const Account* a = index_->read_ahead_account(p.hash)) prefetch_lines(a, sizeof(Account));
        break;
      case Pending::Kind::email: entries[i] = index_->read_ahead_email_entry(p.hash); break;
      case Pending::Kind::session:
        // Its first line, all that a check reads, is on its way already (accounts/session.hpp).
        entries[i] = sessions_.read_ahead_session(p.hash);
        break;
    }
  }
  // Third link, for addresses and sessions: their accounts.
  for (size_t i = 0; i < batch.size; ++i) {
    if (entries[i] == nullptr) continue;
    const Account* a = batch.pending[i].kind == Pending::Kind::email
                           ? AccountIndex::read_ahead_email_account(entries[i])
                           : &static_cast<const Session*>(entries[i])->owner();
    prefetch_lines(a, sizeof(Account));
  }
}

TokenDigest AccountService::token_digest(std::string_view token) const {
  if (token.size() == kTokenBytes) {
    // From where the last one matched, round the batch once (no division: a wrap).
    for (size_t n = 0, i = batch.next < batch.size ? batch.next : 0; n < batch.size; ++n, i = i + 1 < batch.size ? i + 1 : 0) {
      const Pending& p = batch.pending[i];
      if (p.kind == Pending::Kind::session && same_token(p.token.data(), token.data())) {
        batch.next = i + 1;
        return p.digest;
      }
    }
  }
  return session_digest(token);
}

}  // namespace accounts
