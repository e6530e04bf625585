#pragma once
// The command table: every command registers its name, arity and flags here, and the checks that
// every request passes (arity, authentication, loading) run once, before any handler.
// Handler is whatever the caller dispatches to; the protocol layer never calls it.
#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply.hpp"

namespace protocol {

// A request's arguments after the command name.
using Args = std::span<const std::string>;

enum CommandFlags : unsigned {
  kNoFlags = 0,
  kPublic = 1u << 0,            // allowed before AUTH
  kMutating = 1u << 1,          // changes state; its OK means the change is durable
  kServedWhileLoading = 1u << 2,  // answered while the warm-load runs, and while fenced
};

struct CommandSpec {
  std::string name;   // upper case
  int min_args;       // not counting the command name
  int max_args;
  unsigned flags;
  std::string usage;  // e.g. "REGISTER <email> <password>"
  // What a named client must be allowed to run it (docs/OPERATIONS.md, "Clients"): read, login,
  // self_service, admin or monitor. Empty for the public commands (PING, HELP, QUIT, AUTH).
  std::string category = {};
};

// What a connection is allowed at the moment a request arrives.
struct RequestContext {
  bool authenticated;
  bool loading;
  std::string_view loading_progress;
  std::string_view fenced;  // non-empty: why this daemon may not answer as the authority now
  // Non-empty on a replica: the READONLY message for changes, which names the primary.
  std::string_view readonly = {};
};

// The shared checks, in order: arity, authentication, loading, fencing, read-only. nullopt means "run it".
std::optional<Reply> precheck(const CommandSpec& spec, size_t arg_count, const RequestContext& ctx);

inline std::string upper_ascii(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

template <class Handler>
class CommandTable {
 public:
  struct Entry {
    CommandSpec spec;
    Handler handler;
    size_t slot;  // 0, 1, 2, ... in the order of add(): a dense index for per-command counters
    // Optional. Called with a pipelined request's first argument before its batch runs, to start
    // fetching what the handler will read; it never changes a reply (the daemon's read-ahead).
    std::function<void(std::string_view)> read_ahead = {};
    // Set instead of `handler` for a command that never waits (the reads): the session calls it
    // directly, with no coroutine frame to make and resume.
    std::function<Reply(Args)> immediate = {};
  };

  CommandTable() = default;
  // find() points into the map's nodes: a move keeps them, a copy would not.
  CommandTable(const CommandTable&) = delete;
  CommandTable& operator=(const CommandTable&) = delete;
  CommandTable(CommandTable&&) = default;
  CommandTable& operator=(CommandTable&&) = default;

  void add(CommandSpec spec, Handler handler) {
    spec.name = upper_ascii(spec.name);
    std::string key = spec.name;
    if (key.size() > kLongestName) throw std::logic_error("command name too long: " + key);
    if (!entries_.emplace(key, Entry{std::move(spec), std::move(handler), entries_.size()}).second)
      throw std::logic_error("command registered twice: " + key);
    rebuild_by_hash();
  }
  void add_immediate(CommandSpec spec, std::function<Reply(Args)> immediate) {
    std::string key = upper_ascii(spec.name);
    add(std::move(spec), Handler());
    entries_.find(key)->second.immediate = std::move(immediate);
  }
  void set_read_ahead(std::string_view name, std::function<void(std::string_view)> read_ahead) {
    auto it = entries_.find(upper_ascii(name));
    if (it == entries_.end()) throw std::logic_error("read-ahead for an unknown command: " + std::string(name));
    it->second.read_ahead = std::move(read_ahead);
  }
  size_t size() const { return entries_.size(); }

  // Command names are case-insensitive. Upper-cases into a buffer on the stack, then one probe of
  // a flat table, usually one comparison: no allocation, no walk down a tree.
  const Entry* find(std::string_view name) const {
    char upper[kLongestName];
    if (name.size() > sizeof upper || by_hash_.empty()) return nullptr;
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i];
      upper[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    }
    const std::string_view key(upper, name.size());
    for (size_t i = hash_of(key) & (by_hash_.size() - 1);; i = (i + 1) & (by_hash_.size() - 1)) {
      const Entry* entry = by_hash_[i];
      if (entry == nullptr || entry->spec.name == key) return entry;
    }
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) out.push_back(name);
    return out;  // sorted: entries_ is ordered
  }

  // The command names indexed by Entry::slot.
  std::vector<std::string> names_by_slot() const {
    std::vector<std::string> out(entries_.size());
    for (const auto& [name, entry] : entries_) out[entry.slot] = name;
    return out;
  }

 private:
  static constexpr size_t kLongestName = 32;
  // FNV-1a, over the upper-cased name.
  static constexpr uint64_t kHashSeed = 14695981039346656037ull, kHashPrime = 1099511628211ull;
  static uint64_t hash_of(std::string_view upper) {
    uint64_t hash = kHashSeed;
    for (char c : upper) hash = (hash ^ static_cast<unsigned char>(c)) * kHashPrime;
    return hash;
  }

  // Open addressing over the map's entries (a map's nodes never move), at most a quarter full, so
  // that a probe for a name that is no command soon meets an empty place.
  void rebuild_by_hash() {
    std::vector<const Entry*> table(std::bit_ceil(std::max<size_t>(16, entries_.size() * 4)), nullptr);
    for (const auto& [name, entry] : entries_) {
      size_t i = hash_of(name) & (table.size() - 1);
      while (table[i] != nullptr) i = (i + 1) & (table.size() - 1);
      table[i] = &entry;
    }
    by_hash_ = std::move(table);
  }

  std::map<std::string, Entry, std::less<>> entries_;  // by name: names() is sorted
  std::vector<const Entry*> by_hash_;                    // what find() probes
};

}  // namespace protocol
