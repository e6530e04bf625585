// Transport security (issue 13): TLS spoken by a client nobody here wrote (openssl s_client),
// client certificates, certificate reload on SIGHUP, the wrong protocol on each port, and the Unix
// socket with its mode.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using namespace std::chrono_literals;

namespace {

// A scratch directory with a CA, a server certificate for 127.0.0.1, and client certificates.
class Pki {
 public:
  Pki() {
    char pattern[] = "/tmp/accountsd-pki-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir = pattern;
    ca("ca");
    ca("other-ca");
    leaf("server", "ca", "localhost");
  }
  ~Pki() { std::system(("rm -rf " + dir).c_str()); }
  void ca(const std::string& name) {
    run_command("cd " + dir + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
                name + ".key -out " + name + ".pem -days 2 -subj /CN=" + name);
  }
  // A certificate for `cn`, signed by `issuer`, valid for 127.0.0.1.
  void leaf(const std::string& name, const std::string& issuer, const std::string& cn) {
    run_command("cd " + dir + " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
                ".key -out " + name + ".csr -subj /CN=" + cn + " && printf 'subjectAltName=IP:127.0.0.1' > " + name +
                ".ext && openssl x509 -req -in " + name + ".csr -CA " + issuer + ".pem -CAkey " + issuer +
                ".key -CAcreateserial -out " + name + ".pem -days 2 -extfile " + name + ".ext");
  }
  std::string path(const std::string& file) const { return dir + "/" + file; }
  std::string setting(const std::string& file) const { return "\"" + path(file) + "\""; }
  std::string dir;
};

int tls_port(const Daemon& daemon) { return logged_port(daemon, "TLS listening on 127.0.0.1:"); }

// `requests` sent through openssl s_client; its output (stdout and stderr) and exit status.
std::pair<int, std::string> s_client(int port, const std::string& requests, const std::string& options) {
  std::string command = "printf '" + requests + "' | timeout 20 openssl s_client -connect 127.0.0.1:" +
                        std::to_string(port) + " -quiet -verify_return_error " + options + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  int status = pclose(pipe);
  return {WEXITSTATUS(status), out};
}

Settings tls_settings(const Pki& pki) {
  return {{"tls.listen", "\"127.0.0.1:0\""}, {"tls.cert_file", pki.setting("server.pem")},
          {"tls.key_file", pki.setting("server.key")}};
}

}  // namespace

TEST_CASE("TLS: openssl s_client speaks the protocol, and TLS 1.3-only refuses 1.2", "[tls]") {
  Pki pki;
  {
    Daemon daemon(tls_settings(pki));
    int port = tls_port(daemon);
    auto [status, out] = s_client(port, "PING\\nREGISTER tls@example.com correct-horse\\nQUIT\\n",
                                  "-CAfile " + pki.path("ca.pem"));
    INFO(out);
    CHECK(out.find("OK pong") != std::string::npos);
    CHECK(out.find("OK id=") != std::string::npos);
    CHECK(out.find("OK bye") != std::string::npos);
    // TLS 1.2 is the floor by default, and allowed.
    std::tie(status, out) = s_client(port, "PING\\nQUIT\\n", "-tls1_2 -CAfile " + pki.path("ca.pem"));
    CHECK(out.find("OK pong") != std::string::npos);
    // The plain port still works next to it.
    Client c(daemon.port());
    CHECK(c.call("PING") == "OK pong");
    // A client that does not trust our CA does not get through.
    std::tie(status, out) = s_client(port, "PING\\n", "-CAfile " + pki.path("other-ca.pem"));
    CHECK(out.find("OK pong") == std::string::npos);
  }
  Settings only13 = tls_settings(pki);
  only13["tls.min_version"] = "\"1.3\"";
  Daemon daemon(only13);
  int port = tls_port(daemon);
  auto [status, out] = s_client(port, "PING\\nQUIT\\n", "-tls1_2 -CAfile " + pki.path("ca.pem"));
  CHECK(out.find("OK pong") == std::string::npos);
  std::tie(status, out) = s_client(port, "PING\\nQUIT\\n", "-tls1_3 -CAfile " + pki.path("ca.pem"));
  CHECK(out.find("OK pong") != std::string::npos);
}

TEST_CASE("TLS: a client certificate is the client's identity, and an unknown one is refused", "[tls][clients]") {
  Pki pki;
  pki.leaf("reader", "ca", "reader");
  pki.leaf("stranger", "other-ca", "reader");  // the right name, the wrong CA
  pki.leaf("nobody", "ca", "nobody");          // the right CA, no such client
  Settings settings = tls_settings(pki);
  settings["tls.client_ca_file"] = pki.setting("ca.pem");
  settings["tls.require_client_cert"] = "true";
  settings["raw1"] = "[[clients]]\nname = \"reader\"\nallow = [\"read\", \"monitor\"]\n"
                     "[[clients]]\nname = \"admin\"\nsecret_sha256 = \"" +
                     run_command("printf admin-secret | sha256sum | cut -c1-64").substr(0, 64) + "\"\nallow = [\"all\"]";
  Daemon daemon(settings);
  int port = tls_port(daemon);
  std::string ca = "-CAfile " + pki.path("ca.pem");
  // Authenticated by its certificate alone: no AUTH, and only what "reader" may do.
  auto [status, out] = s_client(port, "FIND nobody@example.com\\nDELETE 01890a5d-ac96-7a4e-8c3a-1c2d3e4f5a6b\\nQUIT\\n",
                                ca + " -cert " + pki.path("reader.pem") + " -key " + pki.path("reader.key"));
  INFO(out);
  CHECK(out.find("ERR NOT_FOUND") != std::string::npos);
  CHECK(out.find("ERR FORBIDDEN client reader may not run DELETE") != std::string::npos);
  // No certificate, a certificate from another CA, or one for no client: the handshake fails
  // or the connection closes; nothing is answered.
  for (const std::string& options :
       {ca, ca + " -cert " + pki.path("stranger.pem") + " -key " + pki.path("stranger.key"),
        ca + " -cert " + pki.path("nobody.pem") + " -key " + pki.path("nobody.key")}) {
    std::tie(status, out) = s_client(port, "PING\\nFIND nobody@example.com\\n", options);
    INFO(options << "\n" << out);
    CHECK(out.find("OK pong") == std::string::npos);
    CHECK(out.find("ERR NOT_FOUND") == std::string::npos);
  }
  Client c(daemon.port());
  CHECK(c.call("PING") == "OK pong");
}

TEST_CASE("TLS: SIGHUP reloads the certificate for new connections", "[tls]") {
  Pki pki;
  pki.leaf("first", "ca", "first.example");
  pki.leaf("second", "ca", "second.example");
  run_command("cp " + pki.path("first.pem") + " " + pki.path("live.pem") + " && cp " + pki.path("first.key") + " " +
              pki.path("live.key"));
  Daemon daemon({{"tls.listen", "\"127.0.0.1:0\""}, {"tls.cert_file", pki.setting("live.pem")},
                 {"tls.key_file", pki.setting("live.key")}});
  int port = tls_port(daemon);
  auto subject = [&] {
    return run_command("echo QUIT | timeout 20 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                       " -CAfile " + pki.path("ca.pem") + " 2>&1 | grep -m1 '^subject='");
  };
  CHECK(subject().find("first.example") != std::string::npos);
  run_command("cp " + pki.path("second.pem") + " " + pki.path("live.pem") + " && cp " + pki.path("second.key") + " " +
              pki.path("live.key"));
  kill(daemon.pid(), SIGHUP);
  REQUIRE(wait_for_log(daemon, "TLS certificate"));
  CHECK(subject().find("second.example") != std::string::npos);
  // A broken file on SIGHUP keeps the certificate in use.
  std::ofstream(pki.path("live.pem")) << "not a certificate";
  kill(daemon.pid(), SIGHUP);
  REQUIRE(wait_for_log(daemon, "SIGHUP: TLS not reloaded"));
  CHECK(subject().find("second.example") != std::string::npos);
}

TEST_CASE("the wrong protocol on each port is closed cleanly and logged once at debug", "[tls]") {
  Pki pki;
  Daemon daemon(tls_settings(pki));
  int port = tls_port(daemon);
  // Plain text to the TLS port: no reply, the connection closes.
  Client plain(port);
  plain.send("PING\n");
  CHECK(plain.closed_within(5000ms));
  REQUIRE(wait_for_log(daemon, "TLS handshake failed"));
  // TLS to the plain port: the handshake gets nothing back but a close.
  auto [status, out] = s_client(daemon.port(), "PING\\n", "-CAfile " + pki.path("ca.pem"));
  CHECK(out.find("OK pong") == std::string::npos);
  CHECK(out.find("ERR") == std::string::npos);  // not answered as if it were a request line
  REQUIRE(wait_for_log(daemon, "it speaks TLS to the plain port"));
  // Neither was worth more than a debug line, and both ports still serve.
  std::istringstream lines(daemon.log());
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    bool loud = line.find(" warning ") != std::string::npos || line.find(" error ") != std::string::npos;
    CHECK_FALSE((loud && line.find("MEMORY-ONLY") == std::string::npos));
  }
  Client c(daemon.port());
  CHECK(c.call("PING") == "OK pong");
  std::tie(status, out) = s_client(port, "PING\\nQUIT\\n", "-CAfile " + pki.path("ca.pem"));
  CHECK(out.find("OK pong") != std::string::npos);
}

TEST_CASE("a TLS client that stalls in the handshake is closed at the idle timeout", "[tls]") {
  Pki pki;
  Settings settings = tls_settings(pki);
  settings["server.idle_timeout_s"] = "1";
  Daemon daemon(settings);
  Client stalled(tls_port(daemon));
  stalled.send(std::string("\x16\x03\x01\x00", 4));  // the start of a ClientHello, then nothing
  CHECK(stalled.closed_within(10000ms));
}

TEST_CASE("the Unix socket: its mode, and the protocol over it", "[unix]") {
  char pattern[] = "/tmp/accountsd-unix-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  std::string dir = pattern, path = dir + "/accountsd.sock";
  {
    Daemon daemon({{"server.unix_socket", "\"" + path + "\""}, {"server.unix_socket_mode", "0o600"}});
    struct stat info {};
    REQUIRE(stat(path.c_str(), &info) == 0);
    CHECK(S_ISSOCK(info.st_mode));
    CHECK((info.st_mode & 0777) == 0600);
    std::string out = run_command("printf 'PING\\nREGISTER unix@example.com correct-horse\\nQUIT\\n' | nc -U -q 5 " + path);
    CHECK(out.find("OK pong") != std::string::npos);
    CHECK(out.find("OK id=") != std::string::npos);
    // A second daemon does not take a live socket away.
    auto [status, log] = run_to_exit({{"server.unix_socket", "\"" + path + "\""}});
    CHECK(status == 1);
    CHECK(log.find("another process listens there") != std::string::npos);
    CHECK(daemon.stop() == 0);
  }
  struct stat gone {};
  CHECK(stat(path.c_str(), &gone) != 0);  // removed at exit
  std::system(("rm -rf " + dir).c_str());
}
