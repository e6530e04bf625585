#pragma once
// `accountsd import` and `accountsd export` (docs/IMPORT.md).
#include <optional>
#include <string>

#include "accounts/foreign_hash.hpp"
#include "daemon/config.hpp"

namespace accountsd {

struct ImportSettings {
  std::string file;        // "-" = standard input
  bool skip_bad = false;   // import the good lines and report the bad ones (default: all or nothing)
  std::optional<accounts::FirebaseParams> firebase;
  size_t max_reported = 1000;  // bad lines printed one by one; beyond it only counted
};

// Exit status: 0 every line imported; 1 nothing imported (bad lines without --skip-bad, a daemon
// holding the database, PostgreSQL refusing); 2 usage or configuration; 3 imported, bad lines skipped.
int run_import(const Config& config, const ImportSettings& settings);

// Writes every account to `file` ("-" = standard output). Exit status 0, or 1 on failure.
int run_export(const Config& config, const std::string& file);

}  // namespace accountsd
