// The replica's apply: makes memory agree with a unit of the primary's committed changes
// (accounts/follow.hpp). Readers see the unit whole or not at all (the seqlock in consistent()),
// and no email is ever held by two accounts, not even between two steps of one unit: every
// address a unit frees is released before any address it takes is reserved.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "accounts/account.hpp"
#include "accounts/service.hpp"

namespace accounts {

namespace {

// Odd while a unit is applied: readers that overlap it look again.
class Applying {
 public:
  explicit Applying(std::atomic<uint64_t>& seq) : seq_(seq) {
    seq_.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  ~Applying() { seq_.fetch_add(1, std::memory_order_release); }

 private:
  std::atomic<uint64_t>& seq_;
};

}  // namespace

void AccountService::apply(FollowUnit&& unit) {
  std::unordered_map<Uuid, AccountRecord*, UuidHash> next;
  for (auto& record : unit.records)
    if (!next.emplace(record.id, &record).second)
      throw std::runtime_error("account " + record.id.to_string() + ": read twice in one unit");
  std::unordered_map<Uuid, std::vector<const SessionRow*>, UuidHash> sessions_of;
  for (const auto& row : unit.sessions) sessions_of[row.account].push_back(&row);

  // Every account the unit speaks for: the changed ones, or on a full reload all of them.
  std::vector<Uuid> ids = unit.full ? index_->all_ids() : std::move(unit.changed);
  if (unit.full)
    for (const auto& record : unit.records) ids.push_back(record.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());

  struct Step {
    std::shared_ptr<Account> account;  // in memory now (null: new)
    AccountRecord* next;               // in the database (null: deleted)
    bool same = false;                 // memory holds `next` already, its address included
  };
  std::vector<Step> steps;
  steps.reserve(ids.size());
  // Before readers are held: which accounts are already right. The follower is the only writer of
  // a replica's records and index, so what it reads here stays true until it applies. A full
  // reload after an outage finds most accounts unchanged, and then holds readers only for the
  // rest (docs/BENCHMARKS.md, scenario 18).
  for (const auto& id : ids) {
    auto found = next.find(id);
    Step step{index_->by_id(id), found == next.end() ? nullptr : found->second};
    step.same = step.account && step.next && *step.next == step.account->record() &&
                index_->by_email(step.next->email) == step.account;
    // Nothing at all to do: the same record and address, and no sessions before or after.
    if (step.same && !sessions_of.contains(id) && step.account->sessions_copy().empty()) continue;
    steps.push_back(std::move(step));
  }

  Applying applying(apply_seq_);
  // 1. Release: addresses that move away or go with a deleted account, and the deleted accounts.
  for (auto& step : steps) {
    if (!step.account || step.same) continue;
    const AccountRecord& now = step.account->record();
    // Only an entry that is this account's: after a unit that failed half-way, a record and the
    // index may disagree, and the address may be another account's by now.
    if ((step.next == nullptr || step.next->email != now.email) && index_->by_email(now.email) == step.account)
      index_->erase_email(now.email);
    if (step.next != nullptr) continue;
    count(now.state, std::nullopt);
    for (const auto& s : step.account->sessions_copy()) {
      s->ended.store(true, std::memory_order_release);
      sessions_.erase(s->key);
    }
    step.account->replace_sessions({});
    step.account->publish_presence(Account::Presence::deleted);
    index_->erase_id(now.id);
  }
  // 2. Install: new records, and the addresses they take.
  for (auto& step : steps) {
    if (step.next == nullptr) continue;
    std::string email = step.next->email.str();
    Uuid id = step.next->id;
    if (step.same) {
      // Nothing to install.
    } else if (step.account) {
      count(step.account->record().state, step.next->state);
      step.account->publish(std::move(*step.next));
      if (index_->by_email(email) != step.account && !index_->reserve_email(email, step.account))
        throw std::runtime_error("account " + id.to_string() + ": its new email " + email +
                                 " is still held by another account in memory");
    } else {
      State state = step.next->state;
      step.account = std::make_shared<Account>(std::move(*step.next), Account::Presence::live);
      if (!index_->insert_id(step.account))
        throw std::runtime_error("account " + id.to_string() + ": its id is already in memory");
      if (!index_->reserve_email(email, step.account))
        throw std::runtime_error("account " + id.to_string() + ": its email " + email +
                                 " is held by another account in memory");
      count(std::nullopt, state);
    }
    step.next = nullptr;  // moved from; `account` now carries it
    auto rows = sessions_of.find(id);
    reconcile_sessions(*step.account, rows == sessions_of.end() ? std::vector<const SessionRow*>() : rows->second);
  }
  // 3. Sessions whose last use alone moved.
  for (const auto& row : unit.touched) {
    auto account = index_->by_id(row.account);
    if (!account) continue;
    for (const auto& s : account->sessions_copy())
      if (s->id == row.id) {
        if (s->last_used_ms() < row.last_used_ms) s->used(row.last_used_ms);
        s->persisted(row.last_used_ms);
      }
  }
}

void AccountService::reconcile_sessions(Account& a, const std::vector<const SessionRow*>& rows) {
  Account::Sessions current = a.sessions_copy();
  if (current.empty() && rows.empty()) return;  // most accounts: none before, none after
  Account::Sessions result;
  result.reserve(rows.size());
  std::unordered_set<Uuid, UuidHash> kept;
  for (const SessionRow* row : rows) {
    auto same = std::find_if(current.begin(), current.end(), [row](const SessionRef& s) { return s->id == row->id; });
    if (same != current.end()) {
      // Known: only its last use can have moved (nothing else about a session ever changes).
      if ((*same)->last_used_ms() < row->last_used_ms) (*same)->used(row->last_used_ms);
      (*same)->persisted(row->last_used_ms);
      result.push_back(*same);
      kept.insert(row->id);
      continue;
    }
    auto session = Session::make(row->id, row->digest, a.shared_from_this(), row->created_ms, row->expires_ms,
                                 row->last_used_ms, row->label, row->source);
    if (!sessions_.insert(session))
      throw std::runtime_error("session " + row->id.to_string() + " of account " + row->account.to_string() +
                               ": its token digest (its first half, what memory keeps) is held by another session in memory");
    result.push_back(std::move(session));
  }
  for (const auto& s : current)
    if (!kept.contains(s->id)) {
      s->ended.store(true, std::memory_order_release);
      sessions_.erase(s->key);
    }
  std::sort(result.begin(), result.end(),
            [](const SessionRef& x, const SessionRef& y) { return x->created_ms < y->created_ms; });
  a.replace_sessions(std::move(result));
}

}  // namespace accounts
