// bench/digest_speed: nanoseconds a digest of one 43-character token takes, for the digests a
// WHOAMI could use: accounts::session_digest (SHA-256, OpenSSL's low-level calls, which use the
// CPU's SHA instructions), accounts::digest_token (libsodium's BLAKE2b-256), and OpenSSL's EVP
// interface for comparison. Three rounds each, alternating. docs/BENCHMARKS.md, "Session tokens
// digested with SHA-256".
//
//   build/digest_speed [ROUNDS] [DIGESTS_PER_ROUND]
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "accounts/secrets.hpp"

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int n = argc > 2 ? std::atoi(argv[2]) : 2'000'000;
  accounts::init_secrets();
  std::string token = accounts::new_token();
  unsigned sink = 0;
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const std::vector<std::pair<const char*, std::function<accounts::TokenDigest()>>> digests = {
      {"session_digest (SHA-256, low-level)", [&] { return accounts::session_digest(token); }},
      {"digest_token (BLAKE2b-256, libsodium)", [&] { return accounts::digest_token(token); }},
      {"EVP SHA-256, context reused", [&] {
         accounts::TokenDigest d;
         unsigned size = 0;
         EVP_DigestInit_ex2(context, sha256, nullptr);
         EVP_DigestUpdate(context, token.data(), token.size());
         EVP_DigestFinal_ex(context, d.data(), &size);
         return d;
       }},
      {"EVP_Digest SHA-256, one call", [&] {
         accounts::TokenDigest d;
         unsigned size = 0;
         EVP_Digest(token.data(), token.size(), d.data(), &size, sha256, nullptr);
         return d;
       }},
  };
  std::printf("%-40s %s\n", "digest of a 43-character token", "ns each, per round");
  std::vector<std::string> lines(digests.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < digests.size(); ++k) {
      auto started = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) {
        token[i % token.size()] ^= 1;  // a different token each time, as on a server
        sink += digests[k].second()[0];
      }
      double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - started).count() / n;
      lines[k] += "  " + std::to_string(static_cast<int>(ns + 0.5));
    }
  }
  for (size_t k = 0; k < digests.size(); ++k) std::printf("%-40s%s\n", digests[k].first, lines[k].c_str());
  EVP_MD_CTX_free(context);
  EVP_MD_free(sha256);
  std::fflush(stdout);
  std::fprintf(stderr, "(checksum %u)\n", sink);  // uses every digest, so none is optimised away
  return 0;
}
