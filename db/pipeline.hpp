#pragma once
// One round trip for a group of statements: libpq's pipeline mode (db/*.cpp only: includes libpq).
//
// The statements go out back to back, followed by one Sync, and run in one implicit transaction
// that commits at the Sync. If one fails, the ones after it are skipped and nothing of the group
// commits. The writer sends each batch this way: the statements of a batch no longer wait for
// each other's round trips, and the lease row a batch locks is held only while PostgreSQL itself
// runs the end of it, never across a round trip to accountsd.
#include <stdexcept>
#include <string>
#include <vector>

#include "db/copy.hpp"

namespace db {

// The connection failed during the pipeline. Whether the group committed is not known: the caller
// reconnects and sends it again (it must be idempotent).
struct PipelineBroken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Pipeline {
 public:
  // A statement prepared on the connection (PQprepare), with its parameters as text.
  void prepared(const char* name, std::vector<std::string> params);
  // A statement without parameters, as SQL (one command; pipeline mode takes no lists).
  void sql(const char* text);
  size_t size() const { return statements_.size(); }

  // Sends everything and a Sync, and returns one result per statement, in order: a statement
  // after a failed one gets PGRES_PIPELINE_ABORTED. Throws PipelineBroken when the connection
  // fails. The connection is out of pipeline mode again when this returns or throws normally.
  std::vector<Result> run(PGconn* c);

 private:
  struct Statement {
    const char* name;  // prepared, or nullptr
    const char* text;  // SQL, when not prepared
    std::vector<std::string> params;
  };
  std::vector<Statement> statements_;
};

}  // namespace db
