#pragma once
// Protocol steps that many integration tests take, with Catch's assertions: a failed step stops
// the test case and says what was asked and answered.
#include <catch2/catch.hpp>
#include <string>

#include "support.hpp"

namespace testing {

// The value of `key` in the reply to `request`, which must be OK.
inline std::string ok_field(Client& c, const std::string& request, const std::string& key) {
  std::string reply = c.call(request);
  INFO(request << " -> " << reply);
  REQUIRE(starts_with(reply, "OK "));
  return *field(reply, key);
}

struct Registered {
  std::string id;
  std::string token;  // the confirmation token
};

inline Registered register_account(Client& c, const std::string& email, const std::string& password = "correct horse") {
  std::string reply = c.call("REGISTER " + email + " \"" + password + "\"");
  INFO(reply);
  REQUIRE(starts_with(reply, "OK "));
  return {*field(reply, "id"), *field(reply, "token")};
}

}  // namespace testing
