#pragma once
// The hash table under the account and session indexes: open addressing in a flat array of 8-byte
// slots, searched by readers without a lock and without writing anything shared (under RCU,
// accounts/rcu.hpp), changed by writers under a lock per shard, and grown or shrunk one shard at a
// time, so that no change ever waits for the whole table.
//
// Why not a linked structure (libcds' split-ordered lists, which this replaced): a lookup there
// loads a bucket slot, the bucket's dummy node and then every entry before its own, each a cache
// miss; here it loads one slot line and the entry it names (docs/ARCHITECTURE.md, "The index", and
// docs/BENCHMARKS.md, "A flat index read under RCU").
//
// A slot is empty (0), erased (1, a tombstone: probing goes on past it), or holds an entry: its
// address in the low 48 bits and 16 bits of its hash above, so that a probe dereferences only
// entries whose tag matches. The shard comes from a hash's top bits, the first slot from its low
// bits, the tag from bits 32 to 47; the hash must be well mixed in all of them.
//
// Readers: inside an rcu::ReadLock, find() returns an entry that stays valid until the lock ends,
// even if a writer takes it out meanwhile (the writer defers its disposal past every open read).
// A table replaced by a bigger or smaller one is disposed of the same way, so a reader that is
// still probing the old one finishes undisturbed. Writers never modify a table once replaced.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>

#include "accounts/rcu.hpp"
#include "accounts/spin_lock.hpp"

namespace accounts {

// HashOf: uint64_t operator()(const Entry&), the hash an entry was inserted with (a rebuild needs
// it again: the slot keeps only 16 bits of it).
template <class Entry, class HashOf>
class RcuTable {
 public:
  explicit RcuTable(HashOf hash_of = HashOf())
      : hash_of_(std::move(hash_of)), tables_(new std::atomic<uint64_t>[kShards]), shards_(new Shard[kShards]) {
    for (size_t i = 0; i < kShards; ++i) tables_[i].store(0, std::memory_order_relaxed);
  }
  // Frees the tables. The entries are the owner's: take them out with for_each() first.
  ~RcuTable() {
    for (size_t i = 0; i < kShards; ++i) Table(tables_[i].load(std::memory_order_relaxed)).destroy();
  }
  RcuTable(const RcuTable&) = delete;
  RcuTable& operator=(const RcuTable&) = delete;

  // Inside an rcu::ReadLock: the entry with this hash for which is(entry) holds, or null.
  template <class Is>
  Entry* find(uint64_t hash, Is&& is) const {
    return first_tagged(hash, is);
  }

  // Read-ahead for a lookup soon to come (accounts/read_ahead.cpp): starts fetching the line of
  // slots that find(hash, ...) probes first. Reads no slot, so it needs no rcu::ReadLock.
  void prefetch_slots(uint64_t hash) const {
    const Table t(tables_[shard_of(hash)].load(std::memory_order_acquire));
    if (!t.empty()) __builtin_prefetch(&t.slots[hash & t.mask]);
  }
  // The same for an insert soon to come (a warm-load's batch): the shard's lock and count too,
  // for writing.
  void prefetch_insert(uint64_t hash) const {
    __builtin_prefetch(&shards_[shard_of(hash)], 1);
    const Table t(tables_[shard_of(hash)].load(std::memory_order_acquire));
    if (!t.empty()) __builtin_prefetch(&t.slots[hash & t.mask], 1);
  }
  // Inside an rcu::ReadLock: the entry that the first slot with this hash's tag names, with its
  // first line on its way into the cache, or null. A guess for a further read-ahead (the entry is
  // not read, so it may not be the one find() returns); never a result.
  const Entry* prefetch_entry(uint64_t hash) const {
    const Entry* guess = first_tagged(hash, [](const Entry&) { return true; });
    if (guess != nullptr) __builtin_prefetch(guess);
    return guess;
  }

  // Insert-if-absent: false, and nothing changes, when an entry for which is(entry) holds is in.
  template <class Is>
  bool insert(Entry* entry, uint64_t hash, Is&& is) {
    const auto address = reinterpret_cast<uintptr_t>(entry);
    if ((address & ~kAddressMask) != 0 || address <= kErased)
      throw std::length_error("an index entry's address does not fit in 48 bits");
    const size_t at_shard = shard_of(hash);
    Shard& s = shards_[at_shard];
    std::lock_guard guard(s.lock);
    Table t(tables_[at_shard].load(std::memory_order_relaxed));
    const uint64_t tag = tag_of(hash);
    size_t erased = kNone, empty = kNone;
    if (!t.empty()) {
      for (size_t i = hash & t.mask, n = 0; n <= t.mask; i = (i + 1) & t.mask, ++n) {
        uint64_t v = t.slots[i].load(std::memory_order_relaxed);
        if (v == kEmpty) {
          empty = i;
          break;
        }
        if (v == kErased) {
          if (erased == kNone) erased = i;
        } else if ((v >> kTagShift) == tag && is(*entry_of(v))) {
          return false;
        }
      }
    }
    size_t at = erased;
    if (at == kNone) {  // takes an empty slot, which needs room
      if (empty == kNone || (s.used + 1) * 4 > (t.mask + 1) * 3) {
        t = rebuild(at_shard, capacity_for(s.live.load(std::memory_order_relaxed) + 1));
        empty = first_empty(t, hash);
      }
      at = empty;
      ++s.used;
    }
    t.slots[at].store((tag << kTagShift) | address, std::memory_order_release);
    s.live.store(s.live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }

  // Takes out the entry with this hash for which is(entry) holds and returns it, or null. Readers
  // may still hold it: dispose of it through rcu::defer.
  template <class Is>
  Entry* erase(uint64_t hash, Is&& is) {
    const size_t at_shard = shard_of(hash);
    Shard& s = shards_[at_shard];
    std::lock_guard guard(s.lock);
    Table t(tables_[at_shard].load(std::memory_order_relaxed));
    if (t.empty()) return nullptr;
    const uint64_t tag = tag_of(hash);
    for (size_t i = hash & t.mask, n = 0; n <= t.mask; i = (i + 1) & t.mask, ++n) {
      uint64_t v = t.slots[i].load(std::memory_order_relaxed);
      if (v == kEmpty) return nullptr;
      if ((v >> kTagShift) != tag || v == kErased || !is(*entry_of(v))) continue;
      t.slots[i].store(kErased, std::memory_order_release);
      uint32_t live = s.live.load(std::memory_order_relaxed) - 1;
      s.live.store(live, std::memory_order_relaxed);
      if (t.mask + 1 > kMinCapacity && size_t{live} * 8 < t.mask + 1) rebuild(at_shard, capacity_for(live));
      return entry_of(v);
    }
    return nullptr;
  }

  // Before a bulk load of about `entries` (a hint): grows every shard to what it would grow to
  // as they arrived, so that none is rebuilt on the way. A shard's share is allowed four
  // standard deviations of the spread that hashing leaves. Never shrinks a shard.
  void reserve(size_t entries) {
    const double share = static_cast<double>(entries) / kShards;
    const size_t capacity = grown_to(static_cast<size_t>(share + 4 * std::sqrt(share)) + 8);
    for (size_t i = 0; i < kShards; ++i) {
      std::lock_guard guard(shards_[i].lock);
      if (Table(tables_[i].load(std::memory_order_relaxed)).capacity() < capacity) rebuild(i, capacity);
    }
  }
  // After such a load: shrinks every shard to what its entries would have grown it to, should the
  // hint have been too high. Never grows a shard.
  void trim() {
    for (size_t i = 0; i < kShards; ++i) {
      std::lock_guard guard(shards_[i].lock);
      const size_t capacity = Table(tables_[i].load(std::memory_order_relaxed)).capacity();
      const size_t fitting = grown_to(shards_[i].live.load(std::memory_order_relaxed));
      if (capacity > fitting) rebuild(i, fitting);  // an empty shard has no table: never rebuilt
    }
  }
  size_t size() const {
    size_t n = 0;
    for (size_t i = 0; i < kShards; ++i) n += shards_[i].live.load(std::memory_order_relaxed);
    return n;
  }

  // Slots allocated in all (8 bytes each): the table's memory, for tests and metrics.
  size_t slots() const {
    size_t n = 0;
    for (size_t i = 0; i < kShards; ++i) n += Table(tables_[i].load(std::memory_order_relaxed)).capacity();
    return n;
  }

  // Every entry, shard by shard. Only while nothing inserts or erases (start-up, shutdown, a
  // replica's follower before a full reload, which is the only writer there).
  template <class Each>
  void for_each(Each&& each) const {
    for (size_t s = 0; s < kShards; ++s) {
      const Table t(tables_[s].load(std::memory_order_acquire));
      for (size_t i = 0; i < t.capacity(); ++i)
        if (uint64_t v = t.slots[i].load(std::memory_order_acquire); v > kErased) each(*entry_of(v));
    }
  }

  // A position for a walk over the table in slices while it changes (the session sweep). Each
  // step visits up to `max` entries from where the last stopped, inside an rcu::ReadLock; entries
  // that come or go meanwhile may be visited or not. A shard whose table was replaced while the
  // walk was in it is walked again from its start (some entries twice); if it is replaced once
  // more before the walk leaves it, the walk goes on where it was, and entries that moved behind
  // it wait for the next pass (a shard that keeps growing cannot hold the walk). Returns true when
  // the walk reached the end and starts over.
  struct Cursor {
    size_t shard = 0, slot = 0;
    uint64_t table = 0;      // the table of `shard` the walk is in (only compared)
    bool restarted = false;  // the walk already went back to the start of `shard` once
  };
  template <class Each>
  bool step(Cursor& at, size_t max, Each&& each) const {
    for (size_t visited = 0; visited < max;) {
      if (at.shard == kShards) {
        at = Cursor{};
        return true;
      }
      const uint64_t word = tables_[at.shard].load(std::memory_order_acquire);
      if (word != at.table) {
        if (at.slot > 0 && !at.restarted) at.slot = 0, at.restarted = true;
        at.table = word;
      }
      const Table t(word);
      if (at.slot >= t.capacity()) {
        at = Cursor{at.shard + 1};
        continue;
      }
      for (; at.slot < t.capacity() && visited < max; ++at.slot)
        if (uint64_t v = t.slots[at.slot].load(std::memory_order_acquire); v > kErased) {
          each(*entry_of(v));
          ++visited;
        }
    }
    return false;
  }

 private:
  static constexpr int kShardBits = 10;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  static constexpr size_t kMinCapacity = 8;
  static constexpr uint64_t kEmpty = 0, kErased = 1;
  static constexpr int kTagShift = 48;
  static constexpr uint64_t kAddressMask = (uint64_t{1} << kTagShift) - 1;
  static constexpr size_t kNone = ~size_t{0};

  // A shard's table as its directory word holds it: the address of its slots in the low 48 bits
  // and log2 of their number above, so that a reader gets both from one load (and one cache line
  // for the whole directory), never a size that belongs to another table. 0: no table yet.
  struct Table {
    explicit Table(uint64_t word)
        : slots(reinterpret_cast<std::atomic<uint64_t>*>(word & kAddressMask)),
          mask(word == 0 ? 0 : (size_t{1} << (word >> kTagShift)) - 1) {}
    std::atomic<uint64_t>* slots;
    size_t mask;

    bool empty() const { return slots == nullptr; }
    size_t capacity() const { return slots == nullptr ? 0 : mask + 1; }
    static uint64_t make(size_t capacity) {
      void* block = ::operator new(capacity * sizeof(uint64_t), std::align_val_t{64});
      auto* slots = static_cast<std::atomic<uint64_t>*>(block);
      for (size_t i = 0; i < capacity; ++i) new (&slots[i]) std::atomic<uint64_t>(kEmpty);
      return reinterpret_cast<uint64_t>(block) | (uint64_t{static_cast<uint64_t>(std::countr_zero(capacity))} << kTagShift);
    }
    void destroy() const {
      if (slots != nullptr) ::operator delete(slots, std::align_val_t{64});
    }
    static void destroy_word(void* word) { Table(reinterpret_cast<uint64_t>(word)).destroy(); }
  };

  // The writers' side of a shard, apart from the directory that readers load.
  struct alignas(64) Shard {
    std::atomic<uint32_t> live{0};  // entries; written under the lock, read by size()
    uint32_t used = 0;              // entries and erased slots
    SpinLock lock;
  };

  // Inside an rcu::ReadLock: the first entry of the hash's probe run whose slot carries its tag and
  // for which is(entry) holds, or null.
  template <class Is>
  Entry* first_tagged(uint64_t hash, Is&& is) const {
    const Table t(tables_[shard_of(hash)].load(std::memory_order_acquire));
    if (t.empty()) return nullptr;
    const uint64_t tag = tag_of(hash);
    for (size_t i = hash & t.mask, n = 0; n <= t.mask; i = (i + 1) & t.mask, ++n) {
      uint64_t v = t.slots[i].load(std::memory_order_acquire);
      if (v == kEmpty) return nullptr;
      if ((v >> kTagShift) == tag && v != kErased && is(*entry_of(v))) return entry_of(v);
    }
    return nullptr;
  }

  static uint64_t tag_of(uint64_t hash) { return (hash >> 32) & 0xffff; }
  static size_t shard_of(uint64_t hash) { return hash >> (64 - kShardBits); }
  static Entry* entry_of(uint64_t v) { return reinterpret_cast<Entry*>(v & kAddressMask); }
  // A power of two with `entries` filling at most half of it (a table grows at three quarters).
  static size_t capacity_for(size_t entries) { return std::bit_ceil(std::max(kMinCapacity, entries * 2)); }

  // What a shard grows to as `entries` arrive one by one: the smallest table they fill at most
  // three quarters of (each rebuild on the way doubles it).
  static size_t grown_to(size_t entries) { return std::bit_ceil(std::max(kMinCapacity, (entries * 4 + 2) / 3)); }
  static size_t first_empty(const Table& t, uint64_t hash) {
    size_t i = hash & t.mask;
    while (t.slots[i].load(std::memory_order_relaxed) != kEmpty) i = (i + 1) & t.mask;
    return i;
  }

  // Under the shard's lock: moves its entries into a new table of `capacity` slots (dropping the
  // erased ones), publishes it, and disposes of the old one once no reader can be in it.
  Table rebuild(size_t at_shard, size_t capacity) {
    const uint64_t old_word = tables_[at_shard].load(std::memory_order_relaxed);
    const Table old(old_word);
    const uint64_t fresh_word = Table::make(capacity);
    const Table fresh(fresh_word);
    constexpr size_t kAhead = 8;  // the entries' hashes are read from the entries: fetch ahead
    for (size_t i = 0; i < old.capacity(); ++i) {
      if (i + kAhead < old.capacity())
        if (uint64_t ahead = old.slots[i + kAhead].load(std::memory_order_relaxed); ahead > kErased)
          __builtin_prefetch(entry_of(ahead));
      uint64_t v = old.slots[i].load(std::memory_order_relaxed);
      if (v > kErased) fresh.slots[first_empty(fresh, hash_of_(*entry_of(v)))].store(v, std::memory_order_relaxed);
    }
    tables_[at_shard].store(fresh_word, std::memory_order_release);
    Shard& s = shards_[at_shard];
    s.used = s.live.load(std::memory_order_relaxed);
    if (!old.empty()) rcu::defer(&Table::destroy_word, reinterpret_cast<void*>(old_word));
    return fresh;
  }

  HashOf hash_of_;
  std::unique_ptr<std::atomic<uint64_t>[]> tables_;  // the directory: one word a shard (8 KB)
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace accounts
