// bench/loadgen keeps working: a one-second run against the real daemon, with zero error replies.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "support.hpp"

using namespace testing;

TEST_CASE("loadgen drives the daemon for a second without an error reply", "[bench]") {
  Daemon daemon;
  std::string command = std::string(LOADGEN_BINARY) + " --port " + std::to_string(daemon.port()) +
                        " -c 4 -P 4 -d 1 --mix ping:2,register:1 --json --label smoke > /dev/null";
  CHECK(std::system(command.c_str()) == 0);  // loadgen exits non-zero on any error reply
  Client c(daemon.port());
  CHECK(std::stoi(*field(c.call("STATS"), "accounts")) > 0);
}
