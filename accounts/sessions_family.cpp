// The sessions family: LOGIN_SESSION opens a session, WHOAMI checks one at memory speed (never
// waiting for an actor, never writing), LOGOUT and LOGOUT_ALL end them, SESSIONS lists them; and
// the expiry sweep. The rules for which change ends which sessions are in docs/PROTOCOL.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

#include "accounts/replies.hpp"
#include "accounts/service.hpp"

namespace accounts {

using namespace replies;

namespace {

constexpr size_t kMaxLabel = 128;

Reply invalid_session() { return Reply::error(Error::invalid_session, "unknown, expired or ended session"); }

// A change to an account's sessions only (no new account version).
Change sessions_change(const Account& a) {
  Change change;
  change.account = false;
  change.record.id = a.record().id;
  return change;
}

}  // namespace

std::vector<Uuid> AccountService::session_ids(const Account& a, const std::optional<Uuid>& keep) {
  std::vector<Uuid> ids;
  if (const auto* list = a.existing_sessions())
    for (const auto& s : *list)
      if (!keep || s->id != *keep) ids.push_back(s->id);
  return ids;
}

void AccountService::end_sessions(Account& a, const std::vector<Uuid>& ids) {
  if (ids.empty() || !a.existing_sessions()) return;
  std::erase_if(a.sessions(), [&](const SessionRef& s) {
    if (std::find(ids.begin(), ids.end(), s->id) == ids.end()) return false;
    // From here on no check accepts it, whether it found the session in the index or not.
    s->ended.store(true, std::memory_order_release);
    sessions_.erase(s->key);
    return true;
  });
}

asio::awaitable<Reply> AccountService::login_session(std::string email, std::string password, std::string source,
                                                     std::string label) {
  if (label.size() > kMaxLabel)
    co_return Reply::error(Error::bad_request, "label must be at most " + std::to_string(kMaxLabel) + " bytes");
  OnLogin open = [this, source, label = std::move(label)](Account& a, const AccountRecord&) {
    return open_session(a, source, label);
  };
  co_return co_await login_and(std::move(email), std::move(password), std::move(source), std::move(open));
}

asio::awaitable<Reply> AccountService::open_session(Account& a, const std::string& source, const std::string& label) {
  if (a.in_doubt()) co_return in_doubt();
  int64_t now = now_ms();
  std::string token = new_token();
  const TokenDigest digest = session_digest(token);
  auto session = Session::make(Uuid::v7(now), digest, a.shared_from_this(), now,
                               now + settings_.session_lifetime_s * 1000, now, label, source);
  Change change = sessions_change(a);
  change.opened.push_back(row_of(*session, digest));
  // The bound per account: the oldest sessions end to make room for this one, in the same commit.
  if (const auto* list = a.existing_sessions(); list && list->size() >= settings_.sessions_per_account)
    for (size_t i = 0; i + settings_.sessions_per_account <= list->size(); ++i) change.ended.push_back((*list)[i]->id);
  Settle settle = [this, session, evicted = change.ended](Account& a, bool committed) {
    if (!committed) return;
    end_sessions(a, evicted);
    if (!sessions_.insert(session)) {  // two 256-bit random tokens alike: never, but not silently
      spdlog::error("session {}: token digest already in use; session dropped", session->id.to_string());
      return;
    }
    a.sessions().push_back(session);
  };
  if (!co_await persist(a, std::move(change), std::move(settle))) co_return unavailable();
  auto reply = view_of(a.record());
  reply.field("session", session->id.to_string()).field("token", token).field("expires", format_time(session->expires_ms));
  co_return reply;
}

SessionRef AccountService::find_session(std::string_view token) const {
  if (auto session = sessions_.find(session_key(session_digest(token)))) return session;
  if (!legacy_session_digests_.load(std::memory_order_relaxed)) return {};
  return sessions_.find(session_key(digest_token(token)));
}

Reply AccountService::whoami(std::string_view token) {
  if (!token_shaped(token)) return Reply::error(Error::bad_request, "malformed session token");
  // Coarse: earlier than the exact time by up to a tick, which a last use may lose (it is kept in
  // whole seconds anyway); near the expiry the exact clock decides (accounts/clock.hpp).
  int64_t now = coarse_wall_ms();
  int64_t idle = settings_.session_idle_s * 1000;
  settle_read_ahead();
  auto digest = token_digest(token);
  return consistent([&] {
    auto reply = Reply::ok();
    bool valid = false;
    visit_session(token, digest, [&](Session& session) {
      if (!session.valid_coarse(now, idle) || !session.owner().add_view_to(reply)) return;
      session.used(now);  // the sweep writes it, lazily
      add_session_fields(reply, session.id, session.expiry(idle));
      valid = true;
    });
    if (!valid) return invalid_session();
    return reply;
  });
}

asio::awaitable<Reply> AccountService::logout(std::string token) {
  if (!token_shaped(token)) co_return Reply::error(Error::bad_request, "malformed session token");
  auto session = find_session(token);
  if (!session || !session->valid(now_ms(), settings_.session_idle_s * 1000)) co_return invalid_session();
  Account::Job job = [this, session](Account& a) -> asio::awaitable<Reply> {
    if (session->ended.load(std::memory_order_acquire)) co_return invalid_session();
    if (a.in_doubt()) co_return in_doubt();
    Change change = sessions_change(a);
    change.ended.push_back(session->id);
    Settle settle = [this, id = session->id](Account& a, bool committed) {
      if (committed) end_sessions(a, {id});
    };
    if (!co_await persist(a, std::move(change), std::move(settle))) co_return unavailable();
    co_return Reply::ok().field("session", session->id.to_string());
  };
  co_return co_await session->account->ask(std::move(job));
}

asio::awaitable<Reply> AccountService::logout_all(std::string id, std::string keep_text) {
  std::optional<Uuid> keep;
  if (!keep_text.empty()) {
    keep = Uuid::parse(keep_text);
    if (!keep) co_return Reply::error(Error::bad_request, "malformed session id");
  }
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this, keep](Account& a) -> asio::awaitable<Reply> {
    if (auto refused = unchangeable(a)) co_return *refused;
    auto ids = session_ids(a, keep);
    if (keep && ids.size() == session_ids(a).size())
      co_return Reply::error(Error::not_found, "no such session for this account");
    if (!ids.empty()) {
      Change change = sessions_change(a);
      change.ended = ids;
      Settle settle = [this, ids](Account& a, bool committed) {
        if (committed) end_sessions(a, ids);
      };
      if (!co_await persist(a, std::move(change), std::move(settle))) co_return unavailable();
    }
    co_return Reply::ok().field("id", a.record().id.to_string()).field("ended", static_cast<int64_t>(ids.size()));
  };
  co_return co_await target.account->ask(std::move(job));
}

asio::awaitable<Reply> AccountService::list_sessions(std::string id) {
  auto target = find_by_id(id);
  if (target.error) co_return *target.error;
  Account::Job job = [this](Account& a) -> asio::awaitable<Reply> {
    // Copies: on a replica the follower changes both while this actor runs.
    auto [presence, record] = a.committed();
    if (presence != Account::Presence::live) co_return not_found();
    int64_t now = now_ms(), idle = settings_.session_idle_s * 1000;
    auto reply = Reply::ok().field("id", record.id.to_string());
    int64_t n = 0;
    {
      for (const auto& s : a.sessions_copy()) {
        if (!s->valid(now, idle)) continue;  // expired, not yet swept
        std::string p = "s";  // built in steps: g++ 12 warns falsely (-Wstringop-overflow) on one expression
        p += std::to_string(++n);
        p += '.';
        reply.field(p + "id", s->id.to_string())
            .field(p + "created", format_time(s->created_ms))
            .field(p + "last_used", format_time(s->last_used_ms()))
            .field(p + "expires", format_time(s->expiry(idle)))
            .field(p + "label", s->label())
            .field(p + "source", s->source());
      }
    }
    reply.field("count", n);
    co_return reply;
  };
  co_return co_await target.account->ask(std::move(job));
}

asio::awaitable<Reply> AccountService::end_expired(Account& a, std::vector<Uuid> ids) {
  // Only what is still there: a logout or another sweep may have come first.
  std::erase_if(ids, [&a](const Uuid& id) {
    const auto* list = a.existing_sessions();
    return !list || std::none_of(list->begin(), list->end(), [&id](const auto& s) { return s->id == id; });
  });
  if (ids.empty() || a.in_doubt() || a.presence() != Account::Presence::live) co_return Reply::ok();
  Change change = sessions_change(a);
  change.ended = ids;
  Settle settle = [this, ids](Account& a, bool committed) {
    if (committed) end_sessions(a, ids);
  };
  co_await persist(a, std::move(change), std::move(settle));
  co_return Reply::ok();
}

void AccountService::take_touches(const Touches& touches) {
  for (const auto& [key, used] : touches)
    sessions_.visit(key, [used = used](Session& s) {
      if (s.last_used_ms() < used) s.used(used);
    });
}

void AccountService::sweep_sessions(SessionIndex::Cursor& cursor, size_t max) {
  int64_t now = now_ms(), idle = settings_.session_idle_s * 1000;
  const bool replica = read_only();
  std::unordered_map<Account*, std::vector<Uuid>> expired;
  Change touch;
  touch.account = false;
  std::vector<std::pair<SessionRef, int64_t>> touched;
  Touches forward;
  cursor.visit(max, [&](const SessionRef& s) {
    if (s->ended.load(std::memory_order_acquire)) return;
    if (!s->valid(now, idle)) {
      if (!replica) expired[s->account.get()].push_back(s->id);  // a replica waits for the primary's ending
    } else if (int64_t used = s->last_used_ms(); used - s->persisted_used_ms() >= idle / 4) {
      // Written once it moved by a quarter of the idle timeout: a crash forgets at most that much.
      if (replica) {
        forward.emplace_back(s->key, used);
        s->persisted(used);  // sent; the primary's write comes back as the persisted value
        return;
      }
      touch.touched.emplace_back(s->id, used);
      touched.emplace_back(s, used);
    }
  });
  if (!forward.empty() && forward_touches_) forward_touches_(std::move(forward));
  for (auto& [raw, ids] : expired) {
    auto account = raw->shared_from_this();
    Account::Job job = [this, ids = std::move(ids)](Account& a) { return end_expired(a, ids); };
    account->tell(executor_, std::move(job));
  }
  if (!touch.touched.empty())
    durability_.persist(std::move(touch), [touched = std::move(touched)](bool committed) {
      if (!committed) return;
      for (const auto& [s, used] : touched) s->persisted(used);
    });
}

}  // namespace accounts
