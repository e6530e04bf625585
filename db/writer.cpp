#include "db/writer.hpp"

#include <spdlog/spdlog.h>

#include <unordered_map>

#include "accounts/uuid.hpp"
#include "db/pipeline.hpp"
#include "db/rows.hpp"
#include "db/schema.hpp"

namespace db {

namespace {

// One statement for a whole batch, planned once per connection: the rows arrive as arrays.
const char* kUpsert =
    "INSERT INTO accounts (id, email, state, password_hash, created_ms, updated_ms, confirmed_ms, version,"
    " confirm_digest, confirm_expires_ms, reset_digest, reset_expires_ms)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],"
    " $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::text[], $12::bigint[])"
    " ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, state = EXCLUDED.state,"
    " password_hash = EXCLUDED.password_hash, updated_ms = EXCLUDED.updated_ms,"
    " confirmed_ms = EXCLUDED.confirmed_ms, version = EXCLUDED.version,"
    " confirm_digest = EXCLUDED.confirm_digest, confirm_expires_ms = EXCLUDED.confirm_expires_ms,"
    " reset_digest = EXCLUDED.reset_digest, reset_expires_ms = EXCLUDED.reset_expires_ms"
    " WHERE accounts.version < EXCLUDED.version";
const char* kDelete = "DELETE FROM accounts WHERE id = ANY($1::uuid[])";
// Sessions: opened ones are inserted (a retried batch finds them there), ended ones deleted, and
// a last use only ever moves forward on a row that still exists.
const char* kOpenSessions =
    "INSERT INTO sessions (id, account_id, token_digest, created_ms, last_used_ms, expires_ms, label, source)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],"
    " $7::text[], $8::text[]) ON CONFLICT (id) DO NOTHING";
const char* kEndSessions = "DELETE FROM sessions WHERE id = ANY($1::uuid[])";
const char* kTouchSessions =
    "UPDATE sessions s SET last_used_ms = t.used FROM unnest($1::uuid[], $2::bigint[]) AS t(id, used)"
    " WHERE s.id = t.id AND s.last_used_ms < t.used";
// The fence, last in every batch: the next position, only while the epoch is still ours, logged
// with what the batch changed. The row lock it takes makes a new holder's epoch bump wait for this
// commit, and if the bump came first no row comes back, the position is NULL, and the insert
// fails (not-null violation on changes.position): the whole batch rolls back. It also orders the
// commits of all writer connections by position.
const char* kFence =
    "WITH next AS (UPDATE writer_lease SET position = position + 1 WHERE id = 1 AND epoch = $1 RETURNING position)"
    " INSERT INTO changes (position, committed_ms, accounts, sessions)"
    " VALUES ((SELECT position FROM next), $2, $3::uuid[], $4::uuid[]) RETURNING position";
// Trimming walks the primary key from the oldest entry, so it reads what it deletes and one row
// more, never the whole log (a scan by committed_ms would read every entry every ten seconds, on
// the writer's connection, holding up commits). Positions follow commit order, and so do the
// times; a cut at the first entry young enough keeps everything younger. At most $3 entries go per
// round, so that a shortened retention does not stop the writer for long.
const char* kTrim =
    "WITH lo AS (SELECT min(position) AS p FROM changes)"
    " DELETE FROM changes WHERE position < coalesce("
    "   (SELECT c.position FROM changes c WHERE c.position >= (SELECT p FROM lo)"
    "    AND c.position < (SELECT p FROM lo) + $3 AND c.committed_ms >= $1"
    "    ORDER BY c.position LIMIT 1),"
    "   (SELECT p + $3 FROM lo))"
    " AND EXISTS (SELECT 1 FROM writer_lease WHERE id = 1 AND epoch = $2)";

// A PostgreSQL array literal, built one element at a time.
class ArrayLiteral {
 public:
  void add(std::string_view element) {
    text_ += text_.empty() ? "{\"" : ",\"";
    for (char c : element) {
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += c;
    }
    text_ += '"';
  }
  void add(int64_t number) { add(std::to_string(number)); }
  std::string str() const { return text_.empty() ? "{}" : text_ + "}"; }
  bool empty() const { return text_.empty(); }

 private:
  std::string text_;
};

}  // namespace

// The database refused a batch's data: retrying cannot help.
struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by commit() when the lease epoch is no longer ours.
struct LeaseGone : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A plain libpq connection (pipeline mode is beyond libpqxx 6) with the statements prepared.
struct Writer::Link {
  explicit Link(const std::string& url) : connection(connect(url, "writer cannot connect")) {
    exec(connection.get(), "SET application_name = 'accountsd writer'", PGRES_COMMAND_OK, "writer setup failed");
    const std::pair<const char*, const char*> statements[] = {
        {"upsert", kUpsert},
        {"delete", kDelete},
        {"open_sessions", kOpenSessions},
        {"end_sessions", kEndSessions},
        {"touch_sessions", kTouchSessions},
        {"fence", kFence},
        {"trim", kTrim},
    };
    for (auto [name, sql] : statements) {
      Result r(PQprepare(connection.get(), name, sql, 0, nullptr), &PQclear);
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        throw std::runtime_error(std::string("writer cannot prepare ") + name + ": " + PQerrorMessage(connection.get()));
    }
  }
  bool open() const { return PQstatus(connection.get()) == CONNECTION_OK; }
  Connection connection;
};

Writer::Writer(WriterSettings settings) : settings_(std::move(settings)) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void Writer::start(uint64_t epoch, uint64_t position, std::function<void(const std::string&)> fatal) {
  epoch_ = epoch;
  position_ = position;
  fatal_ = std::move(fatal);
  for (unsigned i = 0; i < std::max(1u, settings_.connections); ++i) threads_.emplace_back([this] { run(); });
}

void Writer::persist(accounts::Change change, accounts::Completion<bool> done) {
  {
    std::lock_guard lock(mutex_);
    if (!fenced_) {
      queue_.push_back(Pending{std::move(change), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(false);
}

void Writer::fail_everything(std::deque<Pending>& batch, const std::string& why) {
  std::deque<Pending> queued;
  {
    std::lock_guard lock(mutex_);
    if (!fenced_) spdlog::critical("{}: failing {} uncommitted changes (none was acknowledged)", why,
                                   batch.size() + queue_.size());
    fenced_ = true;
    queued.swap(queue_);
  }
  for (auto& p : batch) p.done(false);
  for (auto& p : queued) p.done(false);
  batch.clear();
}

size_t Writer::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + in_flight_;
}

bool Writer::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return drained_.wait_for(lock, timeout, [this] { return queue_.empty() && in_flight_ == 0; });
}

void Writer::run() {
  std::unique_ptr<Link> link;
  std::chrono::milliseconds backoff{100};
  while (true) {
    std::deque<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || fenced_ || !queue_.empty(); });
      if (queue_.empty() || fenced_) return;  // stopping with nothing left, or fenced
      // Group commit: the batch is what arrived while the last one committed. With a flush_interval
      // it also fills while changes keep arriving, for at most that long, stopping early once
      // arrivals pause for 100 us. Without one (the default), nothing waits: under load the next
      // batch forms during this one's commit, which measured faster than any wait.
      auto until = std::chrono::steady_clock::now() + settings_.flush_interval;
      while (!stopping_ && queue_.size() < settings_.batch_max && std::chrono::steady_clock::now() < until) {
        size_t before = queue_.size();
        wake_.wait_for(lock, std::chrono::microseconds(100), [this] { return stopping_ || queue_.size() >= settings_.batch_max; });
        if (queue_.size() == before) break;
      }
      size_t take = std::min(queue_.size(), settings_.batch_max);
      for (size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      in_flight_ += batch.size();
    }

    while (true) {  // the same batch until it commits: nothing accepted is ever dropped
      auto attempt_started = std::chrono::steady_clock::now();
      auto observe = [&](bool committed) {
        if (settings_.observer) settings_.observer(batch.size(), std::chrono::steady_clock::now() - attempt_started, committed);
      };
      try {
        if (!link || !link->open()) {
          link = std::make_unique<Link>(settings_.url);
          if (!connected_.exchange(true)) spdlog::info("database connection restored; writing resumes");
        }
        commit(*link, batch);
        observe(true);
        trim(*link);
        backoff = std::chrono::milliseconds{100};
        break;
      } catch (const LeaseGone& e) {
        observe(false);
        size_t failed = batch.size();
        fail_everything(batch, e.what());
        {
          std::lock_guard lock(mutex_);
          in_flight_ -= failed;
          drained_.notify_all();
        }
        wake_.notify_all();
        if (fatal_) fatal_(e.what());
        return;
      } catch (const PipelineBroken& e) {
        // Whether the batch committed is not known; it is idempotent, so it is sent again.
        observe(false);
        if (connected_) spdlog::error("{}; retrying the batch", e.what());
      } catch (const Refused& e) {
        observe(false);
        // The database refused the data itself: retrying cannot help. Fail these changes.
        spdlog::error("database rejected a batch of {} changes: {}", batch.size(), e.what());
        for (auto& p : batch) p.done(false);
        break;
      } catch (const std::exception& e) {
        observe(false);
        spdlog::warn("database unavailable: {}", e.what());
      }
      connected_ = false;
      link.reset();
      {
        std::unique_lock lock(mutex_);
        if (stopping_) {
          spdlog::error("stopping with {} uncommitted changes (none of them was acknowledged)", batch.size());
          return;
        }
        wake_.wait_for(lock, backoff, [this] { return stopping_; });
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds{5000});
    }

    std::lock_guard lock(mutex_);
    in_flight_ -= batch.size();
    if (queue_.empty() && in_flight_ == 0) drained_.notify_all();
  }
}

void Writer::commit(Link& link, std::deque<Pending>& batch) {
  // Several changes to one account collapse into its latest version (a deletion is always last).
  std::unordered_map<accounts::Uuid, const accounts::Change*, accounts::UuidHash> latest;
  ArrayLiteral session_ids, session_accounts, session_digests, session_created, session_used, session_expires,
      session_labels, session_sources, ended, touched_ids, touched_used;
  // For the change log: every account whose record or sessions changed, and sessions whose last
  // use alone moved (a replica re-reads exactly these).
  ArrayLiteral logged_accounts, logged_sessions;
  for (const auto& p : batch) {
    if (p.change.account || !p.change.opened.empty() || !p.change.ended.empty())
      logged_accounts.add(p.change.record.id.to_string());
    for (const auto& s : p.change.opened) {
      session_ids.add(s.id.to_string());
      session_accounts.add(s.account.to_string());
      session_digests.add(hex(s.digest));
      session_created.add(s.created_ms);
      session_used.add(s.last_used_ms);
      session_expires.add(s.expires_ms);
      session_labels.add(s.label);
      session_sources.add(s.source);
    }
    for (const auto& id : p.change.ended) ended.add(id.to_string());
    for (const auto& [id, used] : p.change.touched) {
      touched_ids.add(id.to_string());
      logged_sessions.add(id.to_string());
      touched_used.add(used);
    }
    if (!p.change.account) continue;
    auto& slot = latest[p.change.record.id];
    if (slot == nullptr || slot->record.version < p.change.record.version) slot = &p.change;
  }
  ArrayLiteral ids, emails, states, hashes, created, updated, confirmed, versions, confirm_digests, confirm_expiry,
      reset_digests, reset_expiry, deleted;
  auto digest = [](const accounts::PendingToken& t) { return t.present() ? hex(t.digest()) : std::string(); };
  for (const auto& [id, change] : latest) {
    if (change->removed) {
      deleted.add(id.to_string());
      continue;
    }
    const accounts::AccountRecord& r = change->record;
    ids.add(id.to_string());
    emails.add(r.email);
    states.add(accounts::state_name(r.state));
    hashes.add(r.password_hash.text());
    created.add(r.created_ms);
    updated.add(r.updated_ms);
    confirmed.add(r.confirmed_ms);
    versions.add(static_cast<int64_t>(r.version));
    confirm_digests.add(digest(r.confirm));
    confirm_expiry.add(r.confirm.expires_ms());
    reset_digests.add(digest(r.reset));
    reset_expiry.add(r.reset.expires_ms());
  }

  // One round trip: the whole batch goes out as one pipeline and commits at its Sync.
  Pipeline batch_sql;
  if (!ids.empty())
    batch_sql.prepared("upsert", {ids.str(), emails.str(), states.str(), hashes.str(), created.str(), updated.str(),
                                  confirmed.str(), versions.str(), confirm_digests.str(), confirm_expiry.str(),
                                  reset_digests.str(), reset_expiry.str()});
  // Sessions after the accounts they belong to, and before accounts are deleted (which takes their
  // sessions along): a batch may register an account, open its session and end it.
  if (!session_ids.empty())
    batch_sql.prepared("open_sessions", {session_ids.str(), session_accounts.str(), session_digests.str(),
                                         session_created.str(), session_used.str(), session_expires.str(),
                                         session_labels.str(), session_sources.str()});
  if (!ended.empty()) batch_sql.prepared("end_sessions", {ended.str()});
  if (!touched_ids.empty()) batch_sql.prepared("touch_sessions", {touched_ids.str(), touched_used.str()});
  if (!deleted.empty()) batch_sql.prepared("delete", {deleted.str()});
  const size_t fence = batch_sql.size();
  batch_sql.prepared("fence", {std::to_string(epoch_), std::to_string(accounts::now_ms()), logged_accounts.str(),
                               logged_sessions.str()});
  if (settings_.notify) batch_sql.sql("NOTIFY accountsd_changes");  // wakes the replicas at commit
  auto results = batch_sql.run(link.connection.get());
  for (size_t i = 0; i < results.size(); ++i) {
    PGresult* r = results[i].get();
    if (PQresultStatus(r) != PGRES_FATAL_ERROR) continue;
    auto field = [r](int code) { const char* v = PQresultErrorField(r, code); return std::string(v ? v : ""); };
    if (i == fence && field(PG_DIAG_SQLSTATE) == "23502") {  // no position: the epoch moved
      auto epoch = exec(link.connection.get(), "SELECT epoch FROM writer_lease WHERE id = 1", PGRES_TUPLES_OK,
                        "reading the lease failed");
      throw LeaseGone("the database lease moved to epoch " +
                      std::string(PQntuples(epoch.get()) == 1 ? PQgetvalue(epoch.get(), 0, 0) : "?") + " (ours is " +
                      std::to_string(epoch_) + "): another daemon writes now");
    }
    throw Refused(PQresultErrorMessage(r));
  }
  if (PQresultStatus(results[fence].get()) != PGRES_TUPLES_OK || PQntuples(results[fence].get()) != 1)
    throw Refused("the change log's insert returned no position");
  auto position = std::stoull(PQgetvalue(results[fence].get(), 0, 0));
  commits_.fetch_add(1, std::memory_order_relaxed);
  for (uint64_t seen = position_.load(); seen < position && !position_.compare_exchange_weak(seen, position);) {
  }
  for (auto& p : batch) p.done(true);
}

// Change-log entries trimmed at most per round (every 10 s): 10,000 commits a second, far more
// than one writer's group commits reach.
constexpr int64_t kTrimMax = 100000;

void Writer::trim(Link& link) {
  int64_t now = accounts::now_ms();
  if (now - last_trim_ms_.load(std::memory_order_relaxed) < 10000) return;
  last_trim_ms_ = now;
  try {
    std::string params[] = {std::to_string(now - settings_.log_retention.count() * 1000), std::to_string(epoch_),
                            std::to_string(kTrimMax)};
    const char* values[] = {params[0].c_str(), params[1].c_str(), params[2].c_str()};
    Result r(PQexecPrepared(link.connection.get(), "trim", 3, values, nullptr, nullptr, 0), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) throw std::runtime_error(PQerrorMessage(link.connection.get()));
    if (std::string_view deleted = PQcmdTuples(r.get()); deleted != "0") spdlog::debug("change log: trimmed {} entries", deleted);
  } catch (const std::exception& e) {
    spdlog::warn("change log: trimming failed (retried in 10 s): {}", e.what());
  }
}

}  // namespace db
