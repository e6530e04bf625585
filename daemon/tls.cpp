#include "daemon/tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>

#include "daemon/connection.hpp"

namespace accountsd {

class TlsContext {
 public:
  explicit TlsContext(const Config::Tls& settings) : context(asio::ssl::context::tls_server), settings_(settings) {
    context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                        asio::ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(context.native_handle(), settings.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    load("tls.cert_file", settings.cert_file, [&] { context.use_certificate_chain_file(settings.cert_file); });
    load("tls.key_file", settings.key_file, [&] { context.use_private_key_file(settings.key_file, asio::ssl::context::pem); });
    if (SSL_CTX_check_private_key(context.native_handle()) != 1)
      throw std::runtime_error("tls.key_file " + settings.key_file + " does not belong to tls.cert_file " + settings.cert_file);
    if (!settings.client_ca_file.empty()) {
      load("tls.client_ca_file", settings.client_ca_file, [&] { context.load_verify_file(settings.client_ca_file); });
      // Tell clients which CAs we accept, so that one with several certificates picks the right one.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca_file.c_str()))
        SSL_CTX_set_client_CA_list(context.native_handle(), names);
      context.set_verify_mode(asio::ssl::verify_peer |
                              (settings.require_client_cert ? asio::ssl::verify_fail_if_no_peer_cert : 0));
    } else {
      context.set_verify_mode(asio::ssl::verify_none);
    }
  }

  asio::ssl::context context;
  const Config::Tls& settings() const { return settings_; }

 private:
  template <class F>
  void load(const char* key, const std::string& path, F&& f) {
    try {
      f();
    } catch (const std::system_error& e) {
      throw std::runtime_error(std::string(key) + " " + path + ": " + e.code().message());
    }
  }
  Config::Tls settings_;
};

std::shared_ptr<TlsContext> make_tls_context(const Config::Tls& settings) { return std::make_shared<TlsContext>(settings); }

namespace {

using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// The subject CN of a verified client certificate, or "".
std::string verified_common_name(TlsStream& stream) {
  SSL* ssl = stream.native_handle();
  if (SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509* certificate = SSL_get1_peer_certificate(ssl);
  if (certificate == nullptr) return {};
  char name[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, name, sizeof name);
  X509_free(certificate);
  return n > 0 ? std::string(name, static_cast<size_t>(n)) : std::string();
}

}  // namespace

template <>
struct StreamTraits<TlsStream> {
  static asio::ip::tcp::socket& lowest(TlsStream& s) { return s.next_layer(); }

  // The handshake runs under the connection's deadline (idle, and AUTH's when clients are
  // configured), so a client that starts one and stalls is closed like an idle one.
  static asio::awaitable<bool> start(Connection<TlsStream>& c) {
    c.set_phase_reading();
    auto [ec] = co_await c.stream().async_handshake(asio::ssl::stream_base::server, use_tuple);
    c.set_phase_working();
    if (ec) {
      // Plain text on the TLS port ("http request", "wrong version number"), a client that gave
      // up, or a certificate refused: logged once, at debug; the connection just closes.
      spdlog::debug("closing connection from {}: TLS handshake failed: {}", c.peer(), ec.message());
      co_return false;
    }
    if (std::string name = verified_common_name(c.stream()); !name.empty()) {
      if (auto client = c.server().clients()->find(name)) {
        c.authenticate_as(std::move(client));
      } else if (c.server().clients()->required()) {
        // A certificate from the right CA but for no client: refused, not silently anonymous.
        spdlog::debug("closing connection from {}: client certificate CN={} names no client", c.peer(), name);
        co_return false;
      }
    }
    co_return true;
  }

  // close_notify, but never waiting long for the peer's: a peer that does not answer it would
  // otherwise hold the connection forever.
  static asio::awaitable<void> finish(Connection<TlsStream>& c) {
    auto& socket = c.stream().next_layer();
    if (!socket.is_open() || !SSL_is_init_finished(c.stream().native_handle())) co_return;
    asio::steady_timer bound(socket.get_executor(), std::chrono::milliseconds(c.server().config().tls.shutdown_timeout_ms));
    bound.async_wait([&socket](const asio::error_code& ec) {
      asio::error_code ignored;
      if (!ec) socket.close(ignored);
    });
    co_await c.stream().async_shutdown(use_tuple);  // errors, "unexpected eof" included, end it all the same
    bound.cancel();
  }
};

std::shared_ptr<Session> make_tls_session(asio::ip::tcp::socket socket, Server& server, std::string peer,
                                          std::shared_ptr<TlsContext> context) {
  auto executor = socket.get_executor();
  asio::ssl::context& ssl = context->context;
  return std::make_shared<Connection<TlsStream>>(executor, server, std::move(peer), Transport::tls, std::move(context),
                                                 std::move(socket), ssl);
}

}  // namespace accountsd
