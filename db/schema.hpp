#pragma once
// The database schema: numbered migrations, applied at start-up in one transaction under an
// advisory lock, and the advisory lock that keeps a second daemon off the same database.
#include <pqxx/connection>
#include <stdexcept>

namespace db {

// Held by the running daemon's lease connection (db/lease.hpp) for as long as it holds the lease.
constexpr long long kDaemonLockKey = 0x6163636f756e7464;  // "accountd"
// Taken inside the migration transaction, so two starting daemons never migrate at once.
constexpr long long kMigrationLockKey = kDaemonLockKey + 1;

// The database's schema is newer than this build: it must not start against it (upgrade it).
class SchemaTooNew : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Applies every migration the database does not have yet; returns how many were applied.
// Throws SchemaTooNew when the database is ahead of this build.
int migrate(pqxx::connection& connection);

// The latest schema version this build knows.
int latest_schema_version();

// The version the database has: 0 when it has no accountsd schema at all. Reads only (replicas
// never migrate: the primary does).
int current_schema_version(pqxx::connection& connection);

}  // namespace db
