// accountsd: command line, configuration, then the daemon.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  CLI::App app{"accountsd: an in-memory user-accounts daemon with a plain-text line protocol", "accountsd"};
  std::string config_path;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "TOML configuration file (default: /etc/accountsd/config.toml if it exists)");
  app.add_flag("--check-config", check_only, "Check the configuration, print the verdict and exit (0 valid, 2 invalid)");
  app.set_version_flag("--version", std::string("accountsd ") + ACCOUNTSD_VERSION);
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

  accountsd::init_logging(config.log.level);
  for (const auto& warning : config.warnings) spdlog::warn("configuration: {}", warning);
  try {
    return accountsd::run_daemon(config);
  } catch (const std::exception& e) {
    spdlog::critical("accountsd cannot run: {}", e.what());
    return 1;
  }
}
