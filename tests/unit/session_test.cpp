// accounts/: sessions: last use, lookup by digest and the cache line a check reads, the warm-load's adoption.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <latch>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "accounts/account.hpp"
#include "accounts/index.hpp"
#include "accounts/secrets.hpp"
#include "accounts/session.hpp"
#include "accounts/uuid.hpp"

using namespace accounts;

TEST_CASE("a session's last use moves only forward, in whole seconds", "[sessions]") {
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  const int64_t created = 1700000000000;
  auto session = Session::make(Uuid::v7(created), TokenDigest{1}, account, created, created + 3'600'000, created, "", "");
  session->used(created + 5'400);
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 5'999);  // the same second: nothing to write
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 2'000);  // a coarse clock a tick behind an exact one: never backwards
  CHECK(session->last_used_ms() == created + 5'000);
  session->used(created + 7'000);
  CHECK(session->last_used_ms() == created + 7'000);
  CHECK(session->expiry(60'000) == created + 67'000);
}

TEST_CASE("a session is found by the first half of its token's digest, and what a check reads is one aligned line", "[sessions]") {
  IndexThread attached;
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  const int64_t created = 1700000000000;
  const TokenDigest digest = session_digest("a-token-of-43-characters-for-this-test-only");
  auto session = Session::make(Uuid::v7(created), digest, account, created, created + 3'600'000, created, "", "");
  CHECK(reinterpret_cast<uintptr_t>(session.get()) % 64 == 0);
  CHECK(&session->owner() == account.get());
  CHECK(session->key == session_key(digest));

  SessionIndex index;
  REQUIRE(index.insert(session));
  CHECK(index.find(session_key(digest)).get() == session.get());
  TokenDigest other_half = digest;  // what memory does not keep does not decide
  other_half[31] ^= 1;
  CHECK(index.find(session_key(other_half)).get() == session.get());
  TokenDigest first_half = digest;  // what it keeps does, every byte of it
  for (size_t i : {size_t{0}, size_t{8}, size_t{15}}) {
    first_half = digest;
    first_half[i] ^= 1;
    CHECK_FALSE(index.find(session_key(first_half)));
  }
  // A second session whose key is taken is refused, not dropped silently.
  CHECK_FALSE(index.insert(Session::make(Uuid::v7(created + 1), other_half, account, created, created + 1000, created, "", "")));
  index.erase(session->key);
  CHECK_FALSE(index.find(session_key(digest)));
}

TEST_CASE("warm-load: sessions adopted by two threads in any order end up oldest first, and short lists keep no slack", "[sessions]") {
  AccountRecord record;
  record.id = Uuid::v7(1700000000000);
  auto account = std::make_shared<Account>(std::move(record), Account::Presence::live);
  // Created times 1..2000, handed to two threads in a shuffled order, as two parsers take the
  // rows of one COPY stream.
  std::vector<int64_t> created(2000);
  for (size_t i = 0; i < created.size(); ++i) created[i] = static_cast<int64_t>(i) + 1;
  std::mt19937 shuffle(7);
  std::shuffle(created.begin(), created.end(), shuffle);
  std::latch start(2);
  auto adopt = [&](size_t from, size_t to) {
    start.arrive_and_wait();
    for (size_t i = from; i < to; ++i) {
      TokenDigest digest{};
      std::memcpy(digest.data(), &created[i], sizeof(int64_t));
      account->adopt_session(Session::make(Uuid::v7(created[i]), digest, account, created[i], created[i] + 1000, created[i], "", ""));
    }
  };
  std::thread a(adopt, 0, 1000), b(adopt, 1000, 2000);
  a.join();
  b.join();
  const auto& list = account->sessions();
  REQUIRE(list.size() == 2000);
  bool in_order = true;
  for (size_t i = 0; i < list.size(); ++i) in_order = in_order && list[i]->created_ms == static_cast<int64_t>(i) + 1;
  CHECK(in_order);
  account->replace_sessions({});  // the sessions point back at the account: break the cycle

  // A list as short as sessions.max_per_account allows by default has no slack.
  for (int64_t c : {5, 3, 20, 1, 7, 2, 19, 4, 6, 8, 9, 10, 11, 18, 12, 13, 17, 14, 16, 15})
    account->adopt_session(Session::make(Uuid::v7(c), TokenDigest{static_cast<uint8_t>(c)}, account, c, c + 1000, c, "", ""));
  REQUIRE(list.size() == 20);
  CHECK(list.capacity() == 20);
  CHECK(list.front()->created_ms == 1);
  CHECK(list.back()->created_ms == 20);
  account->replace_sessions({});
}
