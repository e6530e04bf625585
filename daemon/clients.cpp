#include "daemon/clients.hpp"

#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace accountsd {
namespace {
constexpr std::string_view kCategories[] = {"read", "login", "self_service", "admin", "monitor", "all"};
}

SecretDigest digest_secret(std::string_view secret) {
  SecretDigest d;
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  return d;
}

std::optional<SecretDigest> parse_digest(std::string_view hex) {
  SecretDigest d;
  size_t written = 0;
  if (hex.size() != 64 || sodium_hex2bin(d.data(), d.size(), hex.data(), hex.size(), nullptr, &written, nullptr) != 0 ||
      written != d.size())
    return std::nullopt;
  return d;
}

std::string digest_hex(const SecretDigest& digest) {
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, digest.data(), digest.size());
  return hex;
}

bool is_category(std::string_view word) {
  return std::find(std::begin(kCategories), std::end(kCategories), word) != std::end(kCategories);
}

ClientList::ClientList(const std::vector<ClientConfig>& clients, const std::vector<std::string>& commands,
                       const std::vector<std::string>& categories) {
  auto everything = std::make_shared<Client>();
  everything->name = "anyone";
  everything->allowed.assign(commands.size(), true);
  anyone_ = everything;
  for (const auto& config : clients) {
    auto client = std::make_shared<Client>();
    client->name = config.name;
    client->secret = config.secret;
    client->allowed.assign(commands.size(), false);
    for (const auto& word : config.allow) {
      bool known = false;
      for (size_t slot = 0; slot < commands.size(); ++slot) {
        bool match = word == "all" || word == categories[slot] || word == commands[slot];
        if (match) client->allowed[slot] = true;
        known = known || match || is_category(word);
      }
      if (!known) throw std::invalid_argument("client " + config.name + ": allow names no category or command: " + word);
    }
    clients_.emplace(config.name, std::move(client));
  }
}

std::shared_ptr<const Client> ClientList::authenticate(std::string_view name, std::string_view secret) const {
  SecretDigest presented = digest_secret(secret);
  auto it = clients_.find(name);
  // An unknown name, or one without a secret, is compared against a digest nobody's secret has,
  // so the time taken does not say which names exist.
  static const SecretDigest nobody = digest_secret("accountsd: no such client");
  const SecretDigest& expected = it != clients_.end() && it->second->secret ? *it->second->secret : nobody;
  bool same = sodium_memcmp(expected.data(), presented.data(), expected.size()) == 0;
  if (!same || it == clients_.end() || !it->second->secret) return nullptr;
  return it->second;
}

std::shared_ptr<const Client> ClientList::find(std::string_view name) const {
  auto it = clients_.find(name);
  return it == clients_.end() ? nullptr : it->second;
}

}  // namespace accountsd
