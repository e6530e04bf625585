#pragma once
// Named clients with least privilege (docs/OPERATIONS.md, "Clients"). Each client has a name, a
// credential (the SHA-256 digest of its secret, and/or a TLS client certificate whose subject CN
// is its name) and the command categories or commands it may run. The single auth.secret of
// earlier versions is the client "default", allowed everything.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace accountsd {

enum class Transport { tcp, tls, unix_socket };

using SecretDigest = std::array<uint8_t, 32>;  // SHA-256

// As the configuration gives it (daemon/config.cpp reads secrets from files and digests them).
struct ClientConfig {
  std::string name;
  std::optional<SecretDigest> secret;  // none: only a TLS client certificate authenticates it
  std::vector<std::string> allow;      // categories (read, login, self_service, admin, monitor, all) or command names
};

SecretDigest digest_secret(std::string_view secret);
// "sha256 hex" -> digest, or nullopt when not 64 hex digits.
std::optional<SecretDigest> parse_digest(std::string_view hex);
std::string digest_hex(const SecretDigest& digest);
// The categories a client's allow list may name.
bool is_category(std::string_view word);

struct Client {
  std::string name;
  std::optional<SecretDigest> secret;
  std::vector<bool> allowed;  // by command slot (protocol::CommandTable::Entry::slot)
  bool allows(size_t slot) const { return slot < allowed.size() && allowed[slot]; }
};

// The clients in force. Immutable once built; SIGHUP swaps in a new list.
class ClientList {
 public:
  // `commands` and `categories`: every command's name and category, by slot. Throws
  // std::invalid_argument naming a client whose allow list names an unknown category or command.
  ClientList(const std::vector<ClientConfig>& clients, const std::vector<std::string>& commands,
             const std::vector<std::string>& categories);

  bool required() const { return !clients_.empty(); }  // no clients: no AUTH, everything allowed
  // The client `name` if `secret` is its secret. Compares digests in constant time, and costs
  // the same for an unknown name.
  std::shared_ptr<const Client> authenticate(std::string_view name, std::string_view secret) const;
  std::shared_ptr<const Client> find(std::string_view name) const;
  // Everything allowed: the identity of connections when no client is configured.
  const std::shared_ptr<const Client>& anyone() const { return anyone_; }

 private:
  std::map<std::string, std::shared_ptr<const Client>, std::less<>> clients_;
  std::shared_ptr<const Client> anyone_;
};

}  // namespace accountsd
