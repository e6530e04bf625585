#include "db/pipeline.hpp"

namespace db {

void Pipeline::prepared(const char* name, std::vector<std::string> params) {
  statements_.push_back(Statement{name, nullptr, std::move(params)});
}

void Pipeline::sql(const char* text) { statements_.push_back(Statement{nullptr, text, {}}); }

namespace {
[[noreturn]] void broken(PGconn* c, const char* when) {
  throw PipelineBroken(std::string("database connection failed ") + when + ": " + PQerrorMessage(c));
}
}  // namespace

std::vector<Result> Pipeline::run(PGconn* c) {
  // Blocking mode is safe here: PostgreSQL answers each statement with a few bytes, so it never
  // stalls writing results that this side does not read while it is still sending.
  if (PQenterPipelineMode(c) != 1) broken(c, "entering pipeline mode");
  std::vector<const char*> values;
  for (const auto& s : statements_) {
    int sent;
    if (s.name != nullptr) {
      values.clear();
      for (const auto& p : s.params) values.push_back(p.c_str());
      sent = PQsendQueryPrepared(c, s.name, static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0);
    } else {
      sent = PQsendQueryParams(c, s.text, 0, nullptr, nullptr, nullptr, nullptr, 0);
    }
    if (sent != 1) broken(c, "sending a statement");
  }
  if (PQpipelineSync(c) != 1) broken(c, "sending the sync");

  // Each statement's result is followed by a null; the Sync's own result ends the pipeline. A
  // second null in a row means nothing more will come: the connection is gone.
  std::vector<Result> results;
  bool synced = false, after_null = false;
  while (!synced) {
    PGresult* r = PQgetResult(c);
    if (r == nullptr) {
      if (after_null || PQstatus(c) != CONNECTION_OK) broken(c, "before the commit was confirmed");
      after_null = true;
      continue;
    }
    after_null = false;
    Result owned(r, &PQclear);
    if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
      synced = true;
    } else {
      if (PQstatus(c) != CONNECTION_OK) broken(c, "before the commit was confirmed");
      results.push_back(std::move(owned));
    }
  }
  if (results.size() != statements_.size()) broken(c, "(results and statements do not match)");
  if (PQexitPipelineMode(c) != 1) broken(c, "leaving pipeline mode");
  return results;
}

}  // namespace db
