// accounts/rcu_table.hpp, the flat table under the indexes, on its own: one entry per key, probing
// past erased slots, growing and shrinking one shard at a time while readers keep finding what
// stays in, disposal only after the readers, and the sweep's walk.
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "accounts/index.hpp"
#include "accounts/rcu.hpp"
#include "accounts/rcu_table.hpp"
#include "accounts/spin_lock.hpp"

using namespace accounts;

namespace {

struct Item {
  uint64_t key;
};

uint64_t mixed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hashes as a test chooses them: `collide` sends every key to one shard and one first slot, and
// `same_tag` gives them the very same 64 bits, so that only the key tells them apart.
struct ItemHash {
  bool collide = false, same_tag = false;
  uint64_t operator()(uint64_t key) const {
    if (same_tag) return 0x5a5a000012340000ULL;
    if (collide) return 0x5a5a000000000000ULL | (mixed(key) & 0x0000ffff00000000ULL);
    return mixed(key);
  }
  uint64_t operator()(const Item& item) const { return (*this)(item.key); }
};

using Table = RcuTable<Item, ItemHash>;

auto is(uint64_t key) {
  return [key](const Item& item) { return item.key == key; };
}

void dispose(void* item) { delete static_cast<Item*>(item); }

bool insert(Table& t, const ItemHash& h, uint64_t key) {
  auto* item = new Item{key};
  if (t.insert(item, h(key), is(key))) return true;
  delete item;
  return false;
}

bool erase(Table& t, const ItemHash& h, uint64_t key) {
  Item* out = t.erase(h(key), is(key));
  if (out != nullptr) rcu::defer(&dispose, out);
  return out != nullptr;
}

bool has(const Table& t, const ItemHash& h, uint64_t key) {
  rcu::ReadLock reading;
  const Item* found = t.find(h(key), is(key));
  return found != nullptr && found->key == key;
}

void empty_out(Table& t) {
  t.for_each([](Item& item) { delete &item; });
}

}  // namespace

TEST_CASE("rcu table: one entry per key, found past erased slots in a shared probe run", "[index][rcu]") {
  IndexRuntime runtime;
  for (bool same_tag : {false, true}) {
    ItemHash h{true, same_tag};
    Table t(h);
    for (uint64_t k = 1; k <= 40; ++k) REQUIRE(insert(t, h, k));
    for (uint64_t k = 1; k <= 40; ++k) CHECK_FALSE(insert(t, h, k));  // taken
    CHECK(t.size() == 40);
    for (uint64_t k = 2; k <= 40; k += 2) REQUIRE(erase(t, h, k));
    CHECK_FALSE(erase(t, h, 2));  // already out
    for (uint64_t k = 1; k <= 40; ++k) CHECK(has(t, h, k) == (k % 2 == 1));  // the odd ones lie past erased slots
    CHECK_FALSE(has(t, h, 41));
    for (uint64_t k = 2; k <= 40; k += 2) REQUIRE(insert(t, h, k));  // into erased slots again
    for (uint64_t k = 1; k <= 40; ++k) CHECK(has(t, h, k));
    CHECK(t.size() == 40);
    empty_out(t);
  }
}

TEST_CASE("rcu table: the read-ahead guesses the entry a lookup finds, and nothing where no tag matches", "[index][rcu]") {
  IndexRuntime runtime;
  ItemHash h;
  Table t(h);
  t.prefetch_slots(h(1));  // no table yet: nothing to fetch, nothing read
  for (uint64_t k = 1; k <= 1000; ++k) REQUIRE(insert(t, h, k));
  {
    rcu::ReadLock reading;
    for (uint64_t k = 1; k <= 1000; ++k) {
      t.prefetch_slots(h(k));
      const Item* guess = t.prefetch_entry(h(k));
      REQUIRE(guess != nullptr);
      CHECK(guess->key == k);  // distinct 64-bit hashes: the first matching tag is the key's own
    }
    size_t guessed = 0;
    for (uint64_t k = 1001; k <= 2000; ++k) guessed += t.prefetch_entry(h(k)) != nullptr;
    CHECK(guessed < 10);  // only a 16-bit tag that happens to match, in a short probe run
  }
  empty_out(t);
}

TEST_CASE("rcu table: taking keys in and out forever keeps the table small", "[index][rcu]") {
  IndexRuntime runtime;
  ItemHash h;
  Table t(h);
  const size_t empty_slots = [&] {
    for (uint64_t k = 0; k < 30000; ++k) insert(t, h, k);
    for (uint64_t k = 0; k < 30000; ++k) erase(t, h, k);
    return t.slots();
  }();
  // Each shard shrank back to its smallest table once it emptied.
  CHECK(t.size() == 0);
  CHECK(empty_slots <= 1024 * 8);
  // Erased slots are reclaimed, not piled up: 200 keys churned 500 times over leave the table as
  // small as it was, and a search for a missing key still ends.
  for (int round = 0; round < 500; ++round)
    for (uint64_t k = 0; k < 200; ++k) {
      REQUIRE(insert(t, h, 1000000 + k));
      REQUIRE(erase(t, h, 1000000 + k));
    }
  CHECK(t.size() == 0);
  CHECK(t.slots() <= empty_slots);
  CHECK_FALSE(has(t, h, 7));
  // The same in one probe run: a single shard's slots stay bounded.
  ItemHash same{true, false};
  Table one(same);
  for (int round = 0; round < 500; ++round) {
    for (uint64_t k = 0; k < 6; ++k) REQUIRE(insert(one, same, k));
    for (uint64_t k = 0; k < 6; ++k) REQUIRE(erase(one, same, k));
  }
  CHECK(one.slots() <= 16);
  rcu::barrier();
}

// The warm-load's hint: reserve() sizes the shards as growing would have, so that no entry is
// moved on the way (a rebuild is the only caller of the table's hash of an entry, counted here),
// and trim() gives back what a hint too high took. A hint too low only means growing as usual.
TEST_CASE("rcu table: a reserved table takes its entries without a rebuild, and trim undoes a hint too high", "[index][rcu]") {
  IndexRuntime runtime;
  struct CountingHash {
    size_t* rehashed;
    uint64_t operator()(uint64_t key) const { return mixed(key); }
    uint64_t operator()(const Item& item) const { return ++*rehashed, mixed(item.key); }
  };
  using Counted = RcuTable<Item, CountingHash>;
  constexpr uint64_t kEntries = 300000;
  auto fill = [](Counted& t, const CountingHash& h) {
    for (uint64_t k = 0; k < kEntries; ++k) REQUIRE(t.insert(new Item{k}, h(k), is(k)));
  };
  auto all_found = [](const Counted& t, const CountingHash& h) {
    rcu::ReadLock reading;
    for (uint64_t k = 0; k < kEntries; ++k)
      if (t.find(h(k), is(k)) == nullptr) return false;
    return true;
  };
  auto empty_all = [](Counted& t) { t.for_each([](Item& item) { delete &item; }); };

  size_t grown_rehashed = 0;
  CountingHash grown_hash{&grown_rehashed};
  Counted grown(grown_hash);
  fill(grown, grown_hash);
  CHECK(grown_rehashed > kEntries / 2);  // growing moves entries

  for (uint64_t hint : {kEntries, kEntries * 10, kEntries / 10}) {
    INFO("hint " << hint);
    size_t rehashed = 0;
    CountingHash h{&rehashed};
    Counted t(h);
    t.reserve(hint);
    fill(t, h);
    if (hint == kEntries) {
      CHECK(rehashed == 0);
      CHECK(t.slots() == grown.slots());
    }
    if (hint > kEntries) CHECK(t.slots() > grown.slots());
    t.trim();
    CHECK(t.slots() == grown.slots());
    CHECK(t.size() == kEntries);
    CHECK(all_found(t, h));
    empty_all(t);
  }
  empty_all(grown);
  rcu::barrier();
}

TEST_CASE("rcu table: readers find every key that stays while others grow and shrink the shards", "[index][rcu]") {
  IndexRuntime runtime;
  ItemHash h;
  Table t(h);
  const uint64_t stay = 5000;
  for (uint64_t k = 0; k < stay; ++k) REQUIRE(insert(t, h, k));
  std::atomic<bool> done{false};
  std::atomic<long> misses{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      IndexThread attached;
      uint64_t x = 88172645463325252ULL + static_cast<uint64_t>(r);
      while (!done.load()) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        // Reads the item it found: ASan reports it if an erased one was freed under a reader.
        if (!has(t, h, x % stay)) misses.fetch_add(1);
        has(t, h, stay + x % 60000);
        lookups.fetch_add(1);
      }
    });
  // Each round grows every shard severalfold and shrinks it back.
  for (int round = 0; round < 3; ++round) {
    for (uint64_t k = stay; k < stay + 60000; ++k) REQUIRE(insert(t, h, k));
    for (uint64_t k = stay; k < stay + 60000; ++k) REQUIRE(erase(t, h, k));
  }
  done = true;
  for (auto& r : readers) r.join();
  CHECK(misses.load() == 0);
  CHECK(lookups.load() > 0);
  CHECK(t.size() == stay);
  empty_out(t);
}

TEST_CASE("rcu table: threads racing to insert the same keys get one winner per key", "[index][rcu]") {
  IndexRuntime runtime;
  ItemHash h;
  Table t(h);
  const uint64_t keys = 50000;
  std::atomic<long> wins{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < 4; ++w)
    pool.emplace_back([&] {
      IndexThread attached;
      for (uint64_t k = 0; k < keys; ++k)
        if (insert(t, h, k)) wins.fetch_add(1);
    });
  for (auto& p : pool) p.join();
  CHECK(wins.load() == static_cast<long>(keys));
  CHECK(t.size() == keys);
  empty_out(t);
}

TEST_CASE("rcu table: a walk in slices visits every entry that stays, while entries come and go", "[index][rcu]") {
  IndexRuntime runtime;
  ItemHash h;
  Table t(h);
  for (uint64_t k = 0; k < 5000; ++k) REQUIRE(insert(t, h, k));
  // Keys for each shard, to grow the one the walk is in.
  std::vector<std::vector<uint64_t>> spare(1024);
  for (uint64_t k = 100000; k < 100000 + 1024 * 48; ++k) spare[h(k) >> 54].push_back(k);
  Table::Cursor cursor;
  std::set<uint64_t> seen;
  std::set<size_t> grown;
  std::vector<uint64_t> added;
  bool wrapped = false;
  for (int steps = 0; !wrapped && steps < 100000; ++steps) {
    {
      rcu::ReadLock reading;
      wrapped = t.step(cursor, 7, [&](const Item& item) { seen.insert(item.key); });
    }
    // Half-way through a shard, it grows past its table (its entries move to new slots, some of
    // them behind the walk's position). Elsewhere entries come and go.
    if (cursor.slot > 0 && cursor.shard < 1024 && grown.insert(cursor.shard).second) {
      size_t before = t.slots();
      for (uint64_t k : spare[cursor.shard]) REQUIRE(insert(t, h, k));
      REQUIRE(t.slots() > before);
    }
    added.push_back(200000000 + static_cast<uint64_t>(steps));
    REQUIRE(insert(t, h, added.back()));
    if (steps % 2 == 1) REQUIRE(erase(t, h, added[static_cast<size_t>(steps) / 2]));
  }
  CHECK(wrapped);
  CHECK(grown.size() > 500);
  size_t missing = 0;
  for (uint64_t k = 0; k < 5000; ++k) missing += seen.count(k) == 0;
  CHECK(missing == 0);
  empty_out(t);
}

TEST_CASE("rcu: a thread not registered cannot read an index", "[index][rcu]") {
  IndexRuntime runtime;
  bool refused = false;
  std::thread([&] {
    try {
      rcu::ReadLock reading;
    } catch (const std::logic_error&) {
      refused = true;
    }
  }).join();
  CHECK(refused);
}

// accounts/spin_lock.hpp: the shards' and the accounts' lock. Held to mutual exclusion under
// contention (a plain counter comes out exact), and a thread that went to sleep on it is woken
// by the unlock (the test would hang otherwise).
TEST_CASE("spin lock: exclusive under contention, and a sleeping waiter is woken", "[index]") {
  static_assert(sizeof(SpinLock) == 1);
  SpinLock lock;
  uint64_t counter = 0;  // not atomic: only the lock keeps the increments apart
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200000; ++i) {
        lock.lock();
        ++counter;
        lock.unlock();
      }
    });
  for (auto& t : threads) t.join();
  CHECK(counter == 800000);

  std::atomic<bool> released{false};
  bool saw_release = false;
  lock.lock();
  std::thread waiter([&] {
    lock.lock();  // spins, then sleeps until the unlock below
    saw_release = released.load();
    lock.unlock();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // long past the spinning
  released = true;
  lock.unlock();
  waiter.join();
  CHECK(saw_release);
  lock.lock();  // and it is free again
  lock.unlock();
}
