#include "daemon/config.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

namespace accountsd {
namespace {

std::string where(const toml::source_region& region) {
  std::ostringstream out;
  out << "line " << region.begin.line << ", column " << region.begin.column;
  return out.str();
}

struct Loader {
  std::string source;
  Config config;

  [[noreturn]] void fail(const std::string& key, const toml::node& node, const std::string& why) const {
    throw ConfigError(source + ": " + key + " (" + where(node.source()) + "): " + why);
  }

  int64_t integer(const std::string& key, const toml::node& node, int64_t min, int64_t max) const {
    auto value = node.value_exact<int64_t>();
    if (!value) fail(key, node, "must be an integer");
    if (*value < min || *value > max)
      fail(key, node, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return *value;
  }

  std::string string(const std::string& key, const toml::node& node) const {
    auto value = node.value_exact<std::string>();
    if (!value) fail(key, node, "must be a string");
    return *value;
  }

  // HOST:PORT (an IPv6 host in brackets), split into its parts.
  void endpoint(const std::string& key, const toml::node& node, std::string& listen, std::string& host,
                uint16_t& port) const {
    std::string text = string(key, node);
    auto colon = text.rfind(':');
    if (colon == std::string::npos) fail(key, node, "must be HOST:PORT, e.g. \"127.0.0.1:7411\"");
    std::string h = text.substr(0, colon);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    std::string p = text.substr(colon + 1);
    if (h.empty() || p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(p) > 65535)
      fail(key, node, "must be HOST:PORT with a port from 0 to 65535, e.g. \"127.0.0.1:7411\"");
    listen = text;
    host = h;
    port = static_cast<uint16_t>(std::stoi(p));
  }
};

using Setter = std::function<void(Loader&, const std::string& key, const toml::node&)>;

Setter integer_into(auto member, int64_t min, int64_t max) {
  return [=](Loader& l, const std::string& key, const toml::node& node) {
    member(l.config) = static_cast<std::remove_reference_t<decltype(member(l.config))>>(l.integer(key, node, min, max));
  };
}

constexpr int64_t kDay = 86400;

const std::vector<std::pair<std::string, Setter>>& schema() {
  static const std::vector<std::pair<std::string, Setter>> keys = {
      {"server.listen",
       [](Loader& l, const std::string& key, const toml::node& node) {
         l.endpoint(key, node, l.config.server.listen, l.config.server.host, l.config.server.port);
       }},
      {"server.threads", integer_into([](Config& c) -> auto& { return c.server.threads; }, 0, 256)},
      {"server.max_connections", integer_into([](Config& c) -> auto& { return c.server.max_connections; }, 1, 1'000'000)},
      {"server.max_line_bytes", integer_into([](Config& c) -> auto& { return c.server.max_line_bytes; }, 64, 1 << 20)},
      {"server.idle_timeout_s", integer_into([](Config& c) -> auto& { return c.server.idle_timeout_s; }, 1, 7 * kDay)},
      {"server.request_timeout_s", integer_into([](Config& c) -> auto& { return c.server.request_timeout_s; }, 1, 3600)},
      {"server.auth_timeout_s", integer_into([](Config& c) -> auto& { return c.server.auth_timeout_s; }, 1, 3600)},
      {"server.max_unauthenticated",
       integer_into([](Config& c) -> auto& { return c.server.max_unauthenticated; }, 1, 1'000'000)},
      {"server.shutdown_timeout_s", integer_into([](Config& c) -> auto& { return c.server.shutdown_timeout_s; }, 1, 3600)},
      {"auth.secret", [](Loader& l, const std::string& key, const toml::node& node) { l.config.auth.secret = l.string(key, node); }},
      {"database.url", [](Loader& l, const std::string& key, const toml::node& node) { l.config.database.url = l.string(key, node); }},
      {"database.batch_max", integer_into([](Config& c) -> auto& { return c.database.batch_max; }, 1, 100'000)},
      {"database.flush_interval_ms",
       integer_into([](Config& c) -> auto& { return c.database.flush_interval_ms; }, 0, 10'000)},
      {"database.connections", integer_into([](Config& c) -> auto& { return c.database.connections; }, 1, 64)},
      {"database.lease_timeout_ms",
       integer_into([](Config& c) -> auto& { return c.database.lease_timeout_ms; }, 500, 60'000)},
      {"database.write_timeout_s", integer_into([](Config& c) -> auto& { return c.database.write_timeout_s; }, 1, 3600)},
      {"accounts.min_password_length",
       integer_into([](Config& c) -> auto& { return c.accounts.min_password_length; }, 1, 1024)},
      {"accounts.confirm_token_ttl_s",
       integer_into([](Config& c) -> auto& { return c.accounts.confirm_token_ttl_s; }, 1, 365 * kDay)},
      {"accounts.reset_token_ttl_s",
       integer_into([](Config& c) -> auto& { return c.accounts.reset_token_ttl_s; }, 1, 365 * kDay)},
      {"accounts.lockout_threshold", integer_into([](Config& c) -> auto& { return c.accounts.lockout_threshold; }, 1, 1000)},
      {"accounts.lockout_window_s", integer_into([](Config& c) -> auto& { return c.accounts.lockout_window_s; }, 1, 7 * kDay)},
      {"accounts.lockout_hourly_limit",
       integer_into([](Config& c) -> auto& { return c.accounts.lockout_hourly_limit; }, 1, 1'000'000)},
      // Obsolete since the index grows by itself: still accepted, so that old files keep working.
      {"accounts.expected_accounts",
       [](Loader& l, const std::string& key, const toml::node& node) {
         l.integer(key, node, 1, 1'000'000'000);
         l.config.warnings.push_back(key + " (" + where(node.source()) +
                                     ") is obsolete and ignored: the index grows with the accounts; remove it");
       }},
      {"sessions.lifetime_s", integer_into([](Config& c) -> auto& { return c.accounts.session_lifetime_s; }, 1, 3650 * kDay)},
      {"sessions.idle_timeout_s", integer_into([](Config& c) -> auto& { return c.accounts.session_idle_s; }, 1, 3650 * kDay)},
      {"sessions.max_per_account",
       integer_into([](Config& c) -> auto& { return c.accounts.sessions_per_account; }, 1, 1000)},
      {"sessions.sweep_per_tick", integer_into([](Config& c) -> auto& { return c.session_sweep_per_tick; }, 1, 10'000'000)},
      {"password_hash.opslimit", integer_into([](Config& c) -> auto& { return c.accounts.hash.opslimit; }, 1, 64)},
      {"password_hash.memlimit_kib",
       integer_into([](Config& c) -> auto& { return c.accounts.hash.memlimit_kib; }, 8, 4 * 1024 * 1024)},
      {"password_hash.workers", integer_into([](Config& c) -> auto& { return c.password_workers; }, 0, 256)},
      {"password_hash.max_queue", integer_into([](Config& c) -> auto& { return c.accounts.hash_max_queue; }, 1, 1'000'000)},
      {"metrics.listen",
       [](Loader& l, const std::string& key, const toml::node& node) {
         if (node.value_exact<std::string>() == std::string()) {
           l.config.metrics = {};
           return;
         }
         l.endpoint(key, node, l.config.metrics.listen, l.config.metrics.host, l.config.metrics.port);
       }},
      {"log.level",
       [](Loader& l, const std::string& key, const toml::node& node) {
         std::string level = l.string(key, node);
         static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
         for (const char* known : kLevels)
           if (level == known) {
             l.config.log.level = level;
             return;
           }
         l.fail(key, node, "must be one of trace, debug, info, warn, error, critical, off");
       }},
  };
  return keys;
}

const Setter* setter_for(const std::string& key) {
  for (const auto& [name, setter] : schema())
    if (name == key) return &setter;
  return nullptr;
}

void finish(Config& config) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (config.server.threads == 0) config.server.threads = cores;
  config.accounts.hash_workers = config.password_workers == 0 ? cores : config.password_workers;
  config.accounts.write_timeout = std::chrono::seconds(config.database.write_timeout_s);
}

}  // namespace

Config default_config() {
  Config config;
  finish(config);
  return config;
}

Config parse_config(std::string_view text, std::string_view source) {
  Loader loader{std::string(source), Config{}};
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError(loader.source + " (" + where(e.source()) + "): " + std::string(e.description()));
  }
  for (const auto& [section_key, section] : root) {
    std::string section_name(section_key.str());
    const toml::table* table = section.as_table();
    if (table == nullptr)
      loader.fail(section_name, section, "unknown key (every setting lives in a section such as [server])");
    for (const auto& [key, value] : *table) {
      std::string full = section_name + "." + std::string(key.str());
      const Setter* setter = setter_for(full);
      if (setter == nullptr) loader.fail(full, value, "unknown key");
      (*setter)(loader, full, value);
    }
  }
  finish(loader.config);
  return loader.config;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  Config config = parse_config(text.str(), path);
  for (auto& warning : config.warnings) warning = path + ": " + warning;
  config.source_path = path;
  config.source_text = text.str();
  return config;
}

std::vector<std::string> changed_keys(std::string_view before, std::string_view after) {
  auto flatten = [](std::string_view text) {
    std::map<std::string, std::string> keys;
    toml::table root = toml::parse(text);
    for (const auto& [section, table] : root)
      if (const auto* t = table.as_table())
        for (const auto& [key, value] : *t) {
          std::ostringstream rendered;
          value.visit([&rendered](const auto& v) { rendered << v; });
          keys[std::string(section.str()) + "." + std::string(key.str())] = rendered.str();
        }
    return keys;
  };
  auto a = flatten(before), b = flatten(after);
  std::vector<std::string> changed;
  for (const auto& [key, value] : a)
    if (!b.count(key) || b[key] != value) changed.push_back(key);
  for (const auto& [key, value] : b)
    if (!a.count(key)) changed.push_back(key);
  return changed;
}

}  // namespace accountsd
