#pragma once
// TLS for the protocol (docs/OPERATIONS.md, "TLS"): the context made from tls.* and the sessions
// that speak the protocol over it. Only daemon/tls.cpp includes asio/ssl.hpp.
#include <asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "daemon/config.hpp"

namespace accountsd {

class Server;
class Session;
class TlsContext;  // an asio::ssl::context with its settings

// Reads the certificate, key and CA files. Throws std::runtime_error naming the file and what
// OpenSSL said.
std::shared_ptr<TlsContext> make_tls_context(const Config::Tls& settings);

std::shared_ptr<Session> make_tls_session(asio::ip::tcp::socket socket, Server& server, std::string peer,
                                          std::shared_ptr<TlsContext> context);

}  // namespace accountsd
