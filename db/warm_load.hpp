#pragma once
// The warm-load: streams the accounts and sessions tables with COPY and hands each row over.
// A row that breaks an invariant stops the load with an exception naming the row's id.
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "accounts/record.hpp"
#include "accounts/session.hpp"

namespace db {

struct LoadProgress {
  std::atomic<uint64_t> rows{0};               // account rows read so far
  std::atomic<uint64_t> sessions{0};           // session rows read so far
  std::atomic<uint64_t> expected{0};           // the planner's estimate of the accounts (0 = unknown)
  std::atomic<uint64_t> expected_sessions{0};  // and of the sessions
  std::atomic<bool> loading_sessions{false};   // every account is in; the sessions are loading
  std::atomic<uint64_t> position{0};           // the change-log position of the snapshot loaded
};

// Where the rows go.
struct LoadSinks {
  // Called from `parsers` threads at once, in no particular order: must be thread-safe. The
  // records come a few at a time (up to kAdoptBatch).
  static constexpr size_t kAdoptBatch = 16;
  std::function<void(std::span<accounts::AccountRecord>)> adopt;
  // The same for sessions, once every account was adopted.
  std::function<void(std::span<accounts::SessionRow>)> adopt_sessions;
  // Before the accounts, with the number expected (the planner's estimate, 0 when it has none),
  // and after the last one was adopted: for sizing what they go into. The same for the sessions.
  // May be empty.
  std::function<void(uint64_t)> expect_accounts;
  std::function<void()> accounts_adopted;
  std::function<void(uint64_t)> expect_sessions;
  std::function<void()> sessions_adopted;
  // When any stored session's digest is BLAKE2b (opened before schema 5). May be empty.
  std::function<void()> legacy_session_digests;
  // Runs at the start of each parser thread and holds what the thread needs (e.g. its attachment
  // to the index) until the thread ends.
  std::function<std::shared_ptr<void>()> parser_scope = [] { return std::shared_ptr<void>(); };
  unsigned parsers = 2;  // threads parsing rows while the calling thread reads the stream
};

// Returns the number of accounts loaded. progress.expected is the planner's estimate, for showing
// progress only: it may be stale.
// Accounts first, then sessions, both from one REPEATABLE READ snapshot, whose change-log
// position goes to progress.position: a replica follows on from exactly there. The calling thread reads
// the COPY stream into chunks of rows; the parsers turn them into records and adopt them. The first
// row that breaks an invariant, in any thread, stops the load with its exception.
uint64_t warm_load(const std::string& url, LoadProgress& progress, const LoadSinks& sinks);

}  // namespace db
