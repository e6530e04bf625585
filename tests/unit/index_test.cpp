// accounts/: the index: how ids hash over its slots, one winner per key under races, lookups during
// inserts and erases, growth from empty.
#include <catch2/catch.hpp>

#include <atomic>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "accounts/account.hpp"
#include "accounts/index.hpp"
#include "accounts/uuid.hpp"

using namespace accounts;

TEST_CASE("UUID hashes spread sequential ids over the low bits the index uses", "[uuid]") {
  std::set<size_t> buckets;
  for (uint64_t g = 1; g <= 4096; ++g) {
    Uuid id;
    for (int i = 0; i < 8; ++i) id.bytes[15 - i] = static_cast<uint8_t>(g >> (8 * i));  // 0000...0001, ...0002
    buckets.insert(UuidHash{}(id) & 4095);
  }
  CHECK(buckets.size() > 2000);  // about 2590 expected for a uniform hash; 1 with the old one
}

TEST_CASE("index: threads racing insert-if-absent on the same keys get one winner per key", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  const int threads = 4, keys = 20000;
  std::vector<std::vector<std::shared_ptr<Account>>> mine(threads);
  std::atomic<int> wins{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      IndexThread attached;
      start.arrive_and_wait();
      for (int k = 0; k < keys; ++k) {
        AccountRecord r;
        r.email = "user" + std::to_string(k) + "@example.com";
        auto account = std::make_shared<Account>(r, Account::Presence::live);
        if (index.reserve_email(r.email, account)) {
          wins.fetch_add(1);
          mine[t].push_back(account);
        }
      }
    });
  for (auto& t : pool) t.join();
  CHECK(wins.load() == keys);
  CHECK(index.email_count() == static_cast<size_t>(keys));
  // The winner of each key is the one the index returns.
  for (const auto& owned : mine)
    for (const auto& account : owned) REQUIRE(index.by_email(account->record().email) == account);

  // Erase frees a key for the next insert; ids work the same way.
  index.erase_email("user7@example.com");
  CHECK(index.by_email("user7@example.com") == nullptr);
  Uuid id = Uuid::v7(5);
  AccountRecord record;
  record.id = id;
  record.email = "user7@example.com";
  auto again = std::make_shared<Account>(record, Account::Presence::live);
  CHECK(index.reserve_email("user7@example.com", again));
  CHECK(index.insert_id(again));
  CHECK_FALSE(index.insert_id(again));  // once in its life
  CHECK_FALSE(index.insert_id(std::make_shared<Account>(record, Account::Presence::live)));  // the id is taken
  CHECK(index.by_id(id) == again);
  index.erase_id(id);
  CHECK(index.by_id(id) == nullptr);
  // Whoever holds an account the index let go of still has a valid one (ASan would see otherwise).
  index.erase_email("user7@example.com");
  CHECK(again->record().email == "user7@example.com");
}

TEST_CASE("index: lookups run concurrently with inserts and erases", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  std::atomic<bool> done{false};
  std::atomic<long> found{0};
  std::thread reader([&] {
    IndexThread attached;
    while (!done.load())
      for (int k = 0; k < 100; ++k)
        if (index.by_email("k" + std::to_string(k) + "@x.io")) found.fetch_add(1);
  });
  for (int round = 0; round < 200; ++round)
    for (int k = 0; k < 100; ++k) {
      std::string key = "k" + std::to_string(k) + "@x.io";
      index.reserve_email(key, std::make_shared<Account>(AccountRecord{}, Account::Presence::live));
      index.erase_email(key);
    }
  done = true;
  reader.join();
  CHECK(index.email_count() == 0);
  SUCCEED("no crash, no leak reported, readers never blocked writers");
}

TEST_CASE("index: grows from empty while readers find every key inserted before their lookup", "[index]") {
  IndexRuntime runtime;
  AccountIndex index;
  const int keys = 200000;
  std::atomic<int> inserted{0};
  std::atomic<long> misses{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      IndexThread attached;
      uint64_t x = 88172645463325252ull + r;
      while (inserted.load() < keys) {
        int upto = inserted.load();
        if (upto == 0) continue;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = static_cast<int>(x % static_cast<uint64_t>(upto));
        Uuid id{};
        for (int b = 0; b < 4; ++b) id.bytes[15 - b] = static_cast<uint8_t>(k >> (8 * b));
        if (!index.by_id(id)) misses.fetch_add(1);
        if (!index.by_email("g" + std::to_string(k) + "@x.io")) misses.fetch_add(1);
        lookups.fetch_add(1);
      }
    });
  for (int k = 0; k < keys; ++k) {
    AccountRecord record;
    for (int b = 0; b < 4; ++b) record.id.bytes[15 - b] = static_cast<uint8_t>(k >> (8 * b));
    auto account = std::make_shared<Account>(record, Account::Presence::live);
    REQUIRE(index.insert_id(account));
    REQUIRE(index.reserve_email("g" + std::to_string(k) + "@x.io", account));
    inserted.store(k + 1);
  }
  for (auto& t : readers) t.join();
  CHECK(misses.load() == 0);
  CHECK(lookups.load() > 0);
  CHECK(index.id_count() == static_cast<size_t>(keys));
  CHECK(index.email_count() == static_cast<size_t>(keys));
}
