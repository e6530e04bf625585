#include "daemon/transfer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <unordered_map>

#include "accounts/interchange.hpp"
#include "accounts/secrets.hpp"
#include "accounts/uuid.hpp"
#include "db/lease.hpp"
#include "db/transfer.hpp"

namespace accountsd {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A progress line on a terminal (stderr), rewritten at most four times a second; nothing when
// stderr is a file or a pipe, so that logs stay clean.
class Progress {
 public:
  explicit Progress(const char* verb) : verb_(verb), tty_(isatty(STDERR_FILENO) == 1) {}
  void update(uint64_t lines, uint64_t accounts, uint64_t bad) {
    if (!tty_ || (lines & 1023) != 0) return;
    auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    std::fprintf(stderr, "\r%s: %llu lines, %llu accounts, %llu bad (%.0f lines/s)   ", verb_,
                 static_cast<unsigned long long>(lines), static_cast<unsigned long long>(accounts),
                 static_cast<unsigned long long>(bad), static_cast<double>(lines) / seconds_since(start_));
  }
  void done() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  const char* verb_;
  bool tty_;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

std::string holder_name(const char* what) {
  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  return std::string("accountsd ") + what + " on " + host + " pid " + std::to_string(getpid());
}

}  // namespace

int run_import(const Config& config, const ImportSettings& settings) {
  if (config.database.url.empty()) {
    std::cerr << "accountsd import: database.url is empty; an import writes to the configured PostgreSQL\n";
    return 2;
  }
  std::ifstream file_stream;
  std::istream* in = &std::cin;
  if (settings.file != "-") {
    file_stream.open(settings.file, std::ios::binary);
    if (!file_stream) {
      std::cerr << "accountsd import: " << settings.file << ": cannot be read\n";
      return 2;
    }
    in = &file_stream;
  }
  accounts::init_secrets();
  auto started = Clock::now();

  // The import holds the writer lease, as a daemon would: it refuses while a daemon serves this
  // database, and no daemon starts while it runs (docs/IMPORT.md says why).
  db::Lease lease(db::LeaseSettings{config.database.url, std::chrono::milliseconds(config.database.lease_timeout_ms),
                                    holder_name("import"), /*advertise=*/""});
  std::unique_ptr<db::AccountImport> import;
  try {
    lease.acquire();
    import = std::make_unique<db::AccountImport>(config.database.url, lease.epoch());
  } catch (const db::DatabaseTaken& e) {
    std::cerr << "accountsd import: " << e.what()
              << ".\nStop the daemon first: an import writes only to a database no daemon serves. Nothing was imported.\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "accountsd import: " << e.what() << "\nNothing was imported.\n";
    return 1;
  }

  accounts::ImportOptions options{settings.firebase, accounts::now_ms()};
  std::unordered_map<std::string, uint64_t> emails;  // the line each was first seen on
  std::unordered_map<accounts::Uuid, uint64_t, accounts::UuidHash> ids;
  std::error_code size_error;  // a pipe or process substitution has no size: the maps just grow
  if (auto bytes = settings.file == "-" ? 0 : std::filesystem::file_size(settings.file, size_error); !size_error) {
    emails.reserve(bytes / 150);  // sized once (~150 bytes a line), not rehashed step by step
    ids.reserve(bytes / 150);
  }
  bool database_empty = import->existing() == 0;
  std::map<std::string, uint64_t> by_scheme, by_state;
  uint64_t line_number = 0, accepted = 0, bad = 0;
  Progress progress("import");
  auto report = [&](const std::string& problem) {
    if (++bad <= settings.max_reported) std::cerr << settings.file << ": line " << line_number << ": " << problem << '\n';
  };

  std::string line;
  try {
    while (std::getline(*in, line)) {
      ++line_number;
      progress.update(line_number, accepted, bad);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are allowed
      auto parsed = accounts::parse_import_line(line, options);
      if (!parsed.record) {
        report(parsed.problem);
        continue;
      }
      auto& record = *parsed.record;
      if (record.id == accounts::Uuid{}) record.id = accounts::Uuid::v7(record.created_ms);
      auto [email_at, new_email] = emails.try_emplace(record.email.str(), line_number);
      if (!new_email) {
        report("duplicate email " + record.email.str() + " (first on line " + std::to_string(email_at->second) + ")");
        continue;
      }
      if (!database_empty && import->has_email(record.email.str())) {
        emails.erase(email_at);  // a bad line claims nothing
        report("email " + record.email.str() + " already belongs to an account in the database");
        continue;
      }
      auto [id_at, new_id] = ids.try_emplace(record.id, line_number);
      if (!new_id) {
        emails.erase(email_at);
        report("duplicate id " + record.id.to_string() + " (first on line " + std::to_string(id_at->second) + ")");
        continue;
      }
      if (!database_empty && import->has_id(record.id)) {
        emails.erase(email_at);
        ids.erase(id_at);
        report("id " + record.id.to_string() + " already belongs to an account in the database");
        continue;
      }
      // All or nothing: after a bad line nothing more is sent, but every line is still checked,
      // so that one run reports every problem.
      if (bad == 0 || settings.skip_bad) {
        import->add(record);
        ++accepted;
        ++by_scheme[std::string(accounts::scheme_name(parsed.scheme))];
        ++by_state[std::string(accounts::state_name(record.state))];
      }
    }
    progress.done();
    if (in->bad()) throw std::runtime_error(settings.file + ": read error at line " + std::to_string(line_number + 1));
    if (bad > settings.max_reported) std::cerr << "... and " << bad - settings.max_reported << " more bad lines\n";
    if (bad > 0 && !settings.skip_bad) {
      import->abort("bad lines");
      std::cerr << "accountsd import: nothing was imported: " << bad << " of " << line_number
                << " lines are bad (listed above). Fix them, or pass --skip-bad to import the others.\n";
      return 1;
    }
    import->commit();
  } catch (const std::exception& e) {
    progress.done();
    std::cerr << "accountsd import: " << e.what() << "\nNothing was imported.\n";
    return 1;
  }

  double took = seconds_since(started);
  std::string schemes, states;
  for (const auto& [name, n] : by_scheme) schemes += (schemes.empty() ? "" : ", ") + name + " " + std::to_string(n);
  for (const auto& [name, n] : by_state) states += (states.empty() ? "" : ", ") + name + " " + std::to_string(n);
  std::fprintf(stderr, "accountsd import: %llu accounts imported from %s in %.2f s (%.0f accounts/s)\n",
               static_cast<unsigned long long>(accepted), settings.file.c_str(), took,
               took > 0 ? static_cast<double>(accepted) / took : 0.0);
  if (accepted > 0) std::cerr << "  by state: " << states << "\n  by password hash: " << schemes << '\n';
  if (bad > 0) {
    std::cerr << "  " << bad << " bad lines skipped (--skip-bad; listed above)\n";
    return 3;
  }
  return 0;
}

int run_export(const Config& config, const std::string& file) {
  if (config.database.url.empty()) {
    std::cerr << "accountsd export: database.url is empty; an export reads the configured PostgreSQL\n";
    return 2;
  }
  accounts::init_secrets();
  std::ofstream file_stream;
  std::ostream* out = &std::cout;
  std::string temporary;
  if (file != "-") {
    // The file holds every password hash: only its owner may read it, whatever the umask.
    ::umask(077);
    // Written beside the target and renamed at the end: a failed export leaves no half file.
    temporary = file + ".partial";
    file_stream.open(temporary, std::ios::binary | std::ios::trunc);
    if (!file_stream) {
      std::cerr << "accountsd export: " << temporary << ": cannot be written\n";
      return 2;
    }
    out = &file_stream;
  }
  auto started = Clock::now();
  Progress progress("export");
  uint64_t count = 0;
  try {
    db::export_accounts(config.database.url, [&](const accounts::AccountRecord& record) {
      *out << accounts::export_line(record);
      ++count;
      progress.update(count, count, 0);
    });
    out->flush();
    if (!*out) throw std::runtime_error("write failed");
    if (!temporary.empty()) {
      file_stream.close();
      if (std::rename(temporary.c_str(), file.c_str()) != 0) throw std::runtime_error("cannot rename to " + file);
    }
  } catch (const std::exception& e) {
    progress.done();
    if (!temporary.empty()) std::remove(temporary.c_str());
    std::cerr << "accountsd export: " << e.what() << '\n';
    return 1;
  }
  progress.done();
  double took = seconds_since(started);
  std::fprintf(stderr, "accountsd export: %llu accounts written to %s in %.2f s\n", static_cast<unsigned long long>(count),
               file.c_str(), took);
  return 0;
}

}  // namespace accountsd
