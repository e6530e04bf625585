#include "daemon/config.hpp"

#include <toml++/toml.h>

#include <cstdlib>
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

  bool boolean(const std::string& key, const toml::node& node) const {
    auto value = node.value_exact<bool>();
    if (!value) fail(key, node, "must be true or false");
    return *value;
  }

  // A file's contents without the trailing newline (secrets kept in files or systemd credentials).
  std::string secret_from(const std::string& key, const toml::node& node, const std::string& path) const {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(key, node, "cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) fail(key, node, path + " is empty");
    return secret;
  }

  std::string credential(const std::string& key, const toml::node& node, const std::string& name) const {
    const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
    if (directory == nullptr || *directory == 0)
      fail(key, node, "needs systemd's LoadCredential= (CREDENTIALS_DIRECTORY is not set)");
    if (name.empty() || name.find('/') != std::string::npos) fail(key, node, "must be a credential name, not a path");
    return secret_from(key, node, std::string(directory) + "/" + name);
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
         if (node.value_exact<std::string>() == std::string()) {  // no plain TCP listener
           l.config.server.listen.clear();
           l.config.server.host.clear();
           return;
         }
         l.endpoint(key, node, l.config.server.listen, l.config.server.host, l.config.server.port);
       }},
      {"server.unix_socket",
       [](Loader& l, const std::string& key, const toml::node& node) {
         std::string path = l.string(key, node);
         if (!path.empty() && path.front() != '/') l.fail(key, node, "must be an absolute path");
         if (path.size() > 100) l.fail(key, node, "must be at most 100 bytes (the limit of a socket address)");
         l.config.server.unix_socket = path;
       }},
      {"server.unix_socket_mode", integer_into([](Config& c) -> auto& { return c.server.unix_socket_mode; }, 0, 0777)},
      {"server.unix_socket_group",
       [](Loader& l, const std::string& key, const toml::node& node) { l.config.server.unix_socket_group = l.string(key, node); }},
      {"tls.listen",
       [](Loader& l, const std::string& key, const toml::node& node) {
         l.endpoint(key, node, l.config.tls.listen, l.config.tls.host, l.config.tls.port);
       }},
      {"tls.cert_file", [](Loader& l, const std::string& key, const toml::node& node) { l.config.tls.cert_file = l.string(key, node); }},
      {"tls.key_file", [](Loader& l, const std::string& key, const toml::node& node) { l.config.tls.key_file = l.string(key, node); }},
      {"tls.client_ca_file",
       [](Loader& l, const std::string& key, const toml::node& node) { l.config.tls.client_ca_file = l.string(key, node); }},
      {"tls.require_client_cert",
       [](Loader& l, const std::string& key, const toml::node& node) { l.config.tls.require_client_cert = l.boolean(key, node); }},
      {"tls.min_version",
       [](Loader& l, const std::string& key, const toml::node& node) {
         std::string version = l.string(key, node);
         if (version != "1.2" && version != "1.3") l.fail(key, node, "must be \"1.2\" or \"1.3\"");
         l.config.tls.min_version = version;
       }},
      {"tls.shutdown_timeout_ms", integer_into([](Config& c) -> auto& { return c.tls.shutdown_timeout_ms; }, 1, 60'000)},
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
      {"auth.secret_file",
       [](Loader& l, const std::string& key, const toml::node& node) {
         l.config.auth.secret = l.secret_from(key, node, l.string(key, node));
       }},
      {"auth.secret_credential",
       [](Loader& l, const std::string& key, const toml::node& node) {
         l.config.auth.secret = l.credential(key, node, l.string(key, node));
       }},
      {"database.url", [](Loader& l, const std::string& key, const toml::node& node) { l.config.database.url = l.string(key, node); }},
      {"database.batch_max", integer_into([](Config& c) -> auto& { return c.database.batch_max; }, 1, 100'000)},
      {"database.flush_interval_ms",
       integer_into([](Config& c) -> auto& { return c.database.flush_interval_ms; }, 0, 10'000)},
      {"database.connections", integer_into([](Config& c) -> auto& { return c.database.connections; }, 1, 64)},
      {"database.lease_timeout_ms",
       integer_into([](Config& c) -> auto& { return c.database.lease_timeout_ms; }, 500, 60'000)},
      {"database.write_timeout_s", integer_into([](Config& c) -> auto& { return c.database.write_timeout_s; }, 1, 3600)},
      {"replication.enabled",
       [](Loader& l, const std::string& key, const toml::node& node) { l.config.replication.enabled = l.boolean(key, node); }},
      {"replication.promote",
       [](Loader& l, const std::string& key, const toml::node& node) { l.config.replication.promote = l.boolean(key, node); }},
      {"replication.advertise",
       [](Loader& l, const std::string& key, const toml::node& node) {
         std::string address = l.string(key, node);
         auto colon = address.rfind(':');
         if (address.empty()) {  // the default: server.listen, with the port it got
           l.config.replication.advertise.clear();
           return;
         }
         if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() || address.size() > 255 ||
             address.find_first_of(" \t\r\n") != std::string::npos)
           l.fail(key, node, "must be HOST:PORT, the address clients reach this node's protocol at");
         l.config.replication.advertise = address;
       }},
      {"replication.session_max_lag_ms",
       integer_into([](Config& c) -> auto& { return c.replication.session_max_lag_ms; }, 100, 3'600'000)},
      {"replication.log_retention_s",
       integer_into([](Config& c) -> auto& { return c.replication.log_retention_s; }, 60, 30 * kDay)},
      {"accounts.min_password_length",
       integer_into([](Config& c) -> auto& { return c.accounts.min_password_length; }, 1, 1024)},
      {"accounts.confirm_token_ttl_s",
       integer_into([](Config& c) -> auto& { return c.accounts.confirm_token_ttl_s; }, 1, 365 * kDay)},
      {"accounts.reset_token_ttl_s",
       integer_into([](Config& c) -> auto& { return c.accounts.reset_token_ttl_s; }, 1, 365 * kDay)},
      {"accounts.lockout_threshold", integer_into([](Config& c) -> auto& { return c.accounts.lockout_threshold; }, 1, 1000)},
      {"accounts.lockout_window_s", integer_into([](Config& c) -> auto& { return c.accounts.lockout_window_s; }, 1, 7 * kDay)},
      {"accounts.address_failures",
       integer_into([](Config& c) -> auto& { return c.accounts.address_failures; }, 1, 1'000'000)},
      {"accounts.address_throttles",
       integer_into([](Config& c) -> auto& { return c.accounts.address_throttles; }, 16, 100'000'000)},
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

// One [[clients]] table.
ClientConfig client_from(Loader& l, const toml::table& table, size_t index) {
  ClientConfig client;
  std::string prefix = "clients[" + std::to_string(index) + "]";
  int secrets = 0;
  for (const auto& [key_name, value] : table) {
    std::string key = prefix + "." + std::string(key_name.str());
    if (key_name == "name") {
      client.name = l.string(key, value);
      bool good = !client.name.empty() && client.name.size() <= 64 &&
                  client.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == std::string::npos;
      if (!good) l.fail(key, value, "must be 1 to 64 letters, digits, '_', '.' or '-'");
    } else if (key_name == "secret_sha256") {
      auto digest = parse_digest(l.string(key, value));
      if (!digest) l.fail(key, value, "must be 64 hex digits: the SHA-256 of the secret (accountsd digest-secret prints it)");
      client.secret = digest;
      ++secrets;
    } else if (key_name == "secret_file") {
      client.secret = digest_secret(l.secret_from(key, value, l.string(key, value)));
      ++secrets;
    } else if (key_name == "secret_credential") {
      client.secret = digest_secret(l.credential(key, value, l.string(key, value)));
      ++secrets;
    } else if (key_name == "allow") {
      const toml::array* list = value.as_array();
      if (list == nullptr) l.fail(key, value, "must be a list of categories or commands, e.g. [\"read\", \"login\"]");
      for (const auto& item : *list) client.allow.push_back(l.string(key, item));
    } else {
      l.fail(key, value, "unknown key (a client has name, secret_sha256 | secret_file | secret_credential, allow)");
    }
  }
  if (client.name.empty()) l.fail(prefix, table, "a client needs a name");
  if (secrets > 1) l.fail(prefix, table, "give one of secret_sha256, secret_file, secret_credential");
  if (client.allow.empty()) l.fail(prefix, table, "a client needs an allow list (categories or commands)");
  return client;
}

const Setter* setter_for(const std::string& key) {
  for (const auto& [name, setter] : schema())
    if (name == key) return &setter;
  return nullptr;
}

void finish(Config& config) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // One core is left to the password workers, the writer and whatever shares the machine (often
  // PostgreSQL or the application): on two cores one loop served reads at pipeline depth 1 1.3x
  // faster, with a third of the p99, than two (docs/BENCHMARKS.md, "One I/O thread fewer than
  // the cores").
  if (config.server.threads == 0) config.server.threads = std::max(1u, cores - 1);
  // Hashing leaves a core too, so that a flood of LOGINs (an attack as often as a rush) cannot
  // slow every other request: on two cores, GET p99 under LOGIN saturation was 0.47-0.73 ms with
  // one worker against 1.2-2.8 ms with two, at half the logins a second (docs/BENCHMARKS.md,
  // "A core left free of hashing").
  config.accounts.hash_workers = config.password_workers == 0 ? std::max(1u, cores - 1) : config.password_workers;
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
    if (section_name == "clients") {
      const toml::array* list = section.as_array();
      if (list == nullptr || !list->is_array_of_tables())
        loader.fail(section_name, section, "must be [[clients]] tables, one per client");
      for (size_t i = 0; i < list->size(); ++i) {
        ClientConfig client = client_from(loader, *list->get(i)->as_table(), i);
        for (const auto& other : loader.config.clients)
          if (other.name == client.name) loader.fail("clients[" + std::to_string(i) + "].name", *list->get(i), "two clients named " + client.name);
        loader.config.clients.push_back(std::move(client));
      }
      continue;
    }
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
  Config& c = loader.config;
  if (!c.auth.secret.empty()) {
    for (const auto& client : c.clients)
      if (client.name == "default")
        throw ConfigError(loader.source + ": auth.secret is the client \"default\"; a [[clients]] entry has that name too");
    c.clients.push_back(ClientConfig{"default", digest_secret(c.auth.secret), {"all"}});
  }
  if (c.server.listen.empty() && c.tls.listen.empty() && c.server.unix_socket.empty())
    throw ConfigError(loader.source + ": server.listen is empty and there is no tls.listen or server.unix_socket: nothing to listen on");
  if (!c.tls.listen.empty() && (c.tls.cert_file.empty() || c.tls.key_file.empty()))
    throw ConfigError(loader.source + ": tls.listen needs tls.cert_file and tls.key_file");
  if (c.replication.enabled && c.database.url.empty())
    throw ConfigError(loader.source + ": replication.enabled needs database.url: the nodes follow each other through PostgreSQL");
  if (c.tls.require_client_cert && c.tls.client_ca_file.empty())
    throw ConfigError(loader.source + ": tls.require_client_cert needs tls.client_ca_file");
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
      if (const auto* list = table.as_array()) {  // [[clients]]
        std::ostringstream rendered;
        rendered << *list;
        keys[std::string(section.str())] = rendered.str();
      } else if (const auto* t = table.as_table())
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
