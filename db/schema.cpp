#include "db/schema.hpp"

#include <pqxx/transaction>

#include <string>
#include <vector>

namespace db {
namespace {

// Never edit a migration that has shipped: add a new one.
const std::vector<std::string>& migrations() {
  static const std::vector<std::string> list = {
      // 1: the accounts table. Times are Unix milliseconds; token digests are hex (empty = none).
      // The email constraint is deferred so that one batch may move an address between accounts.
      R"(CREATE TABLE accounts (
           id                 uuid    PRIMARY KEY,
           email              text    NOT NULL,
           state              text    NOT NULL,
           password_hash      text    NOT NULL,
           created_ms         bigint  NOT NULL,
           updated_ms         bigint  NOT NULL,
           confirmed_ms       bigint  NOT NULL DEFAULT 0,
           version            bigint  NOT NULL,
           confirm_digest     text    NOT NULL DEFAULT '',
           confirm_expires_ms bigint  NOT NULL DEFAULT 0,
           reset_digest       text    NOT NULL DEFAULT '',
           reset_expires_ms   bigint  NOT NULL DEFAULT 0,
           CONSTRAINT accounts_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED
         );
         CREATE VIEW accounts_readable AS
           SELECT id, email, state,
                  to_timestamp(created_ms / 1000.0) AS created,
                  to_timestamp(updated_ms / 1000.0) AS updated,
                  version
             FROM accounts;)",
      // 2: the writer lease (docs/ARCHITECTURE.md, "Fencing"). One row: the epoch of the daemon
      // that holds the lease. A daemon bumps it when it takes the lease, and every write
      // transaction checks it under a row lock, so nothing commits for a daemon that lost it.
      R"(CREATE TABLE writer_lease (
           id          smallint    PRIMARY KEY CHECK (id = 1),
           epoch       bigint      NOT NULL,
           holder      text        NOT NULL DEFAULT '',
           acquired_at timestamptz NOT NULL DEFAULT now()
         );
         INSERT INTO writer_lease (id, epoch) VALUES (1, 0);)",
      // 3: login sessions. The token is kept only as its digest (hex, like the other tokens);
      // an account's sessions go with it.
      R"(CREATE TABLE sessions (
           id            uuid    PRIMARY KEY,
           account_id    uuid    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
           token_digest  text    NOT NULL UNIQUE,
           created_ms    bigint  NOT NULL,
           last_used_ms  bigint  NOT NULL,
           expires_ms    bigint  NOT NULL,
           label         text    NOT NULL DEFAULT '',
           source        text    NOT NULL DEFAULT ''
         );
         CREATE INDEX sessions_account_id ON sessions (account_id);)",
      // 4: the change log that replicas follow (docs/ARCHITECTURE.md, "Replication"). Every write
      // transaction takes the next position from the lease row (which serialises the commits, so
      // positions become visible in order, with no gaps) and records which accounts and sessions
      // it changed. `advertise` is where the primary takes changes, for READONLY replies.
      R"(ALTER TABLE writer_lease
           ADD COLUMN position  bigint NOT NULL DEFAULT 0,
           ADD COLUMN advertise text   NOT NULL DEFAULT '';
         CREATE TABLE changes (
           position     bigint PRIMARY KEY,
           committed_ms bigint NOT NULL,
           accounts     uuid[] NOT NULL,
           sessions     uuid[] NOT NULL DEFAULT '{}'
         );)",
      // 5: session tokens are digested with SHA-256 from here on (accounts/secrets.hpp: faster
      // on every WHOAMI). The sessions already stored keep their BLAKE2b digests and are marked,
      // so that the daemon also looks a token up by BLAKE2b while any of them is left; rows
      // inserted without the column are of the new kind. The partial index finds the old ones at
      // once and stays empty once they are gone.
      R"(ALTER TABLE sessions ADD COLUMN blake2b_digest boolean NOT NULL DEFAULT true;
         ALTER TABLE sessions ALTER COLUMN blake2b_digest SET DEFAULT false;
         CREATE INDEX sessions_blake2b_digest ON sessions (id) WHERE blake2b_digest;)",
  };
  return list;
}

}  // namespace

int latest_schema_version() { return static_cast<int>(migrations().size()); }

int current_schema_version(pqxx::connection& connection) {
  pqxx::read_transaction tx(connection, "schema-version");
  if (tx.exec1("SELECT to_regclass('schema_migrations') IS NULL")[0].as<bool>()) return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
}

int migrate(pqxx::connection& connection) {
  pqxx::work tx(connection, "migrate");
  tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
  tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version integer PRIMARY KEY,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  auto current = tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
  if (current > latest_schema_version())
    throw SchemaTooNew("the database schema (version " + std::to_string(current) +
                             ") is newer than this accountsd knows (" + std::to_string(latest_schema_version()) +
                             "): upgrade accountsd");
  int applied = 0;
  for (int version = current + 1; version <= latest_schema_version(); ++version) {
    tx.exec(migrations()[static_cast<size_t>(version - 1)]);
    tx.exec("INSERT INTO schema_migrations (version) VALUES (" + std::to_string(version) + ")");
    ++applied;
  }
  tx.commit();
  return applied;
}

}  // namespace db
