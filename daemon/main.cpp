// accountsd: command line, configuration, then the daemon.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <iterator>

#include "daemon/allocator.hpp"
#include "daemon/clients.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"
#include "daemon/transfer.hpp"

#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  CLI::App app{"accountsd: an in-memory user-accounts daemon with a plain-text line protocol", "accountsd"};
  std::string config_path;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "TOML configuration file (default: /etc/accountsd/config.toml if it exists)");
  app.add_flag("--check-config", check_only, "Check the configuration, print the verdict and exit (0 valid, 2 invalid)");
  app.set_version_flag("--version", std::string("accountsd ") + ACCOUNTSD_VERSION);

  // accountsd import FILE / accountsd export FILE (docs/IMPORT.md); without one, the daemon runs.
  accountsd::ImportSettings import;
  accounts::FirebaseParams firebase;
  auto* import_command = app.add_subcommand(
      "import", "Import accounts with their password hashes from a JSON-lines file into the configured database, "
                "while no daemon serves it (docs/IMPORT.md)");
  import_command->add_option("file", import.file, "The file, one JSON object a line; - for standard input")->required();
  import_command->add_flag("--skip-bad", import.skip_bad,
                           "Import the good lines and report the bad ones (default: import nothing if any line is bad)");
  auto* key = import_command->add_option("--firebase-signer-key", firebase.signer_key,
                                         "Firebase: the project's base64_signer_key (for lines with a salt)");
  import_command->add_option("--firebase-salt-separator", firebase.salt_separator, "Firebase: base64_salt_separator")
      ->needs(key);
  import_command->add_option("--firebase-rounds", firebase.rounds, "Firebase: rounds")->needs(key)->check(CLI::Range(1, 64));
  import_command->add_option("--firebase-mem-cost", firebase.mem_cost, "Firebase: mem_cost")->needs(key)->check(CLI::Range(1, 20));
  std::string export_file;
  auto* export_command = app.add_subcommand(
      "export", "Write every account, with its password hash, as JSON lines (the import format); works while the daemon runs");
  export_command->add_option("file", export_file, "The file to write; - for standard output")->required();
  auto* digest_command = app.add_subcommand(
      "digest-secret", "Read a client secret on standard input and print the SHA-256 that [[clients]] secret_sha256 takes");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }

  accountsd::Config config;
  try {
    const std::string system_config = "/etc/accountsd/config.toml";
    if (config_path.empty() && std::filesystem::exists(system_config)) config_path = system_config;
    config = config_path.empty() ? accountsd::default_config() : accountsd::load_config(config_path);
  } catch (const accountsd::ConfigError& e) {
    std::cerr << "accountsd: invalid configuration: " << e.what() << '\n';
    return 2;
  }
  if (check_only) {
    std::cout << "accountsd: configuration " << (config_path.empty() ? "(built-in defaults)" : config_path) << " is valid\n";
    return 0;
  }

  if (digest_command->parsed()) {
    std::string secret((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();  // as secret_file does
    if (secret.empty()) {
      std::cerr << "accountsd digest-secret: no secret on standard input\n";
      return 2;
    }
    std::cout << accountsd::digest_hex(accountsd::digest_secret(secret)) << '\n';
    return 0;
  }
  if (import_command->parsed() || export_command->parsed()) {
    accountsd::init_logging("warn");
    if (!firebase.signer_key.empty()) import.firebase = firebase;
    try {
      return import_command->parsed() ? accountsd::run_import(config, import) : accountsd::run_export(config, export_file);
    } catch (const std::exception& e) {
      std::cerr << "accountsd: " << e.what() << '\n';
      return 1;
    }
  }

  accountsd::init_logging(config.log.level);
  spdlog::info("accountsd {} starting; memory: {}", ACCOUNTSD_VERSION, accountsd::allocator_summary());
  for (const auto& warning : config.warnings) spdlog::warn("configuration: {}", warning);
  try {
    return accountsd::run_daemon(config);
  } catch (const std::exception& e) {
    spdlog::critical("accountsd cannot run: {}", e.what());
    return 1;
  }
}
