// Importing users with the password hashes of other systems, and exporting them (issue 14).
// The hashes come from tools that are not accountsd (tests/vectors/make_hash_vectors.py: passlib,
// bcrypt, argon2-cffi, mkpasswd, hashlib.scrypt with openssl enc).
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "helpers.hpp"
#include "support.hpp"

using namespace testing;
using json = nlohmann::json;

namespace {

std::vector<json> hash_vectors() {
  std::string out = run_command("/usr/bin/python3 " + std::string(ACCOUNTSD_SOURCE_DIR) +
                                "/tests/vectors/make_hash_vectors.py --cheap");
  std::vector<json> vectors;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) vectors.push_back(json::parse(line));
  return vectors;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/accountsd-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string email_of(size_t i) { return "imported" + std::to_string(i) + "@example.com"; }

// One import line per vector; the Firebase one carries its salt, and its project parameters go on
// the command line.
std::pair<std::string, std::string> import_file_and_flags(const std::vector<json>& vectors) {
  std::string text, flags;
  for (size_t i = 0; i < vectors.size(); ++i) {
    const auto& v = vectors[i];
    json line = {{"email", email_of(i)}, {"state", "active"}, {"created", "2021-03-04T05:06:07.089Z"},
                 {"password_hash", v["hash"]}};
    if (v.contains("salt")) {
      line["salt"] = v["salt"];
      flags = " --firebase-signer-key " + v["signer_key"].get<std::string>() + " --firebase-salt-separator " +
              v["salt_separator"].get<std::string>() + " --firebase-rounds " + std::to_string(v["rounds"].get<int>()) +
              " --firebase-mem-cost " + std::to_string(v["mem_cost"].get<int>());
    }
    text += line.dump() + "\n";
  }
  return {write_file("vectors.jsonl", text), flags};
}

}  // namespace

TEST_CASE("import: every hash format logs in, is re-hashed to Argon2id, and a restart keeps it", "[import]") {
  auto vectors = hash_vectors();
  REQUIRE(vectors.size() >= 17);
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  auto [file, flags] = import_file_and_flags(vectors);
  auto [status, output] = run_accountsd(settings, "import " + file + flags);
  INFO(output);
  REQUIRE(status == 0);
  CHECK(output.find(std::to_string(vectors.size()) + " accounts imported") != std::string::npos);
  // Stored exactly as given (the Firebase one with its project parameters folded in).
  CHECK(pg.sql("SELECT count(*) FROM accounts WHERE password_hash LIKE '$argon2id$%'") == "2\n");

  {
    Daemon daemon(settings);
    daemon.wait_ready();
    Client c(daemon.port());
    for (size_t i = 0; i < vectors.size(); ++i) {
      std::string password = vectors[i]["password"];
      INFO(vectors[i]["scheme"] << ": " << vectors[i]["hash"]);
      // A wrong password first: it must fail against the imported hash, and change nothing.
      CHECK(starts_with(c.call("LOGIN " + email_of(i) + " \"wrong " + password + "\""), "ERR INVALID_CREDENTIALS "));
      std::string reply = c.call("LOGIN " + email_of(i) + " \"" + password + "\"");
      CHECK(starts_with(reply, "OK "));
      CHECK(field(reply, "created") == "2021-03-04T05:06:07.089Z");
    }
    CHECK(daemon.stop() == 0);
  }
  // Every successful LOGIN re-hashed durably: nothing imported is left.
  CHECK(pg.sql("SELECT count(*) FROM accounts WHERE password_hash NOT LIKE '$argon2id$v=19$m=8,t=1,p=1$%'") == "0\n");

  Daemon again(settings);
  again.wait_ready();
  Client c(again.port());
  for (size_t i = 0; i < vectors.size(); ++i) {
    std::string password = vectors[i]["password"];
    INFO(vectors[i]["scheme"]);
    CHECK(starts_with(c.call("LOGIN " + email_of(i) + " \"" + password + "\""), "OK "));
    CHECK(starts_with(c.call("LOGIN " + email_of(i) + " \"wrong " + password + "\""), "ERR INVALID_CREDENTIALS "));
  }
  std::remove(file.c_str());
}

// A machine out of memory must not turn an owner's right password into a wrong one: that would
// count towards the lockout, and an attacker who can exhaust memory could lock anyone out.
TEST_CASE("import: an imported hash that runs out of memory answers BUSY, not a wrong password, and locks nobody out",
          "[import][security]") {
  json vector = json::parse(run_command("/usr/bin/python3 " + std::string(ACCOUNTSD_SOURCE_DIR) +
                                        "/tests/vectors/make_hash_vectors.py --scrypt-64mib"));
  const std::string password = vector["password"];
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  auto [file, flags] = import_file_and_flags({vector});
  auto [status, output] = run_accountsd(settings, "import " + file + flags);
  INFO(output);
  REQUIRE(status == 0);
  Daemon daemon(settings);
  daemon.wait_ready();
  Client c(daemon.port());
  // OpenSSL's scrypt needs 64 MiB for this hash; 32 MiB above what the daemon has mapped is less.
  daemon.cap_address_space(32u << 20);
  for (int i = 0; i < 8; ++i)  // more than lockout_threshold (5)
    CHECK(starts_with(c.call("LOGIN " + email_of(0) + " \"" + password + "\""), "ERR BUSY "));
  daemon.lift_address_space();
  CHECK(starts_with(c.call("LOGIN " + email_of(0) + " \"" + password + "\""), "OK "));
  CHECK(daemon.log().find("the hash could not be computed") != std::string::npos);
  // And it was re-hashed: Argon2id from now on.
  CHECK(pg.sql("SELECT password_hash LIKE '$argon2id$%' FROM accounts") == "t\n");
}

TEST_CASE("import: bad lines are reported by number, all or nothing unless --skip-bad", "[import]") {
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  seed(pg, "already@example.com");
  const std::string bcrypt = "$2b$04$CbRlTNjrellg1ttHfgRf7OOZlIi0NDW1UqGMG/LEBjloARwB3tF6K";
  auto line = [&](const std::string& email, const std::string& extra = "") {
    return "{\"email\": \"" + email + "\", \"state\": \"active\", \"created\": 1700000000000, \"password_hash\": \"" +
           bcrypt + "\"" + extra + "}\n";
  };
  std::string text = line("good1@example.com", ", \"id\": \"01890a5d-ac96-7a4e-8c3a-1c2d3e4f5a6b\"") +  // 1
                     "{not json\n" +                                                                     // 2
                     line("good2@example.com", ", \"nickname\": \"x\"") +                                // 3
                     "{\"email\": \"x@example.com\", \"state\": \"active\", \"created\": 1, \"password_hash\": \"{SSHA}abc\"}\n"  // 4
                     + line("GOOD1@Example.com") +                                                        // 5
                     line("other@example.com", ", \"id\": \"01890a5d-ac96-7a4e-8c3a-1c2d3e4f5a6b\"") +   // 6
                     "{\"email\": \"s@example.com\", \"state\": \"banned\", \"created\": 1, \"password_hash\": \"" + bcrypt + "\"}\n"  // 7
                     + line("Already@example.com") +                                                      // 8
                     "\n" +                                                                              // 9: blank, fine
                     line("good3@example.com") +                                                          // 10
                     "{\"email\": \"c@example.com\", \"state\": \"active\", \"created\": \"yesterday\", \"password_hash\": \"" + bcrypt + "\"}\n"  // 11
                     + "{\"email\": \"f@example.com\", \"state\": \"active\", \"created\": 1, \"password_hash\": \"AAAA\", \"salt\": \"AAAA\"}\n";  // 12
  std::string file = write_file("bad.jsonl", text);

  auto [status, output] = run_accountsd(settings, "import " + file);
  INFO(output);
  CHECK(status == 1);
  CHECK(output.find("line 2: not valid JSON") != std::string::npos);
  CHECK(output.find("line 3: unknown key \"nickname\"") != std::string::npos);
  CHECK(output.find("line 4: password_hash: unknown password hash format") != std::string::npos);
  CHECK(output.find("line 5: duplicate email good1@example.com (first on line 1)") != std::string::npos);
  CHECK(output.find("line 6: duplicate id 01890a5d-ac96-7a4e-8c3a-1c2d3e4f5a6b (first on line 1)") != std::string::npos);
  CHECK(output.find("line 7: state must be unconfirmed, active or deactivated") != std::string::npos);
  CHECK(output.find("line 8: email already@example.com already belongs to an account in the database") != std::string::npos);
  CHECK(output.find("line 9") == std::string::npos);
  CHECK(output.find("line 10") == std::string::npos);
  CHECK(output.find("line 11: created missing, or not an RFC 3339 time") != std::string::npos);
  CHECK(output.find("line 12: a line with a salt is a Firebase scrypt hash") != std::string::npos);
  CHECK(output.find("nothing was imported: 9 of 12 lines are bad") != std::string::npos);
  CHECK(pg.sql("SELECT count(*) FROM accounts") == "1\n");  // the seeded one only

  std::tie(status, output) = run_accountsd(settings, "import --skip-bad " + file);
  CHECK(status == 3);
  CHECK(output.find("2 accounts imported") != std::string::npos);
  CHECK(output.find("9 bad lines skipped") != std::string::npos);
  CHECK(pg.sql("SELECT email FROM accounts ORDER BY email") == "already@example.com\ngood1@example.com\ngood3@example.com\n");
  std::remove(file.c_str());
}

TEST_CASE("import: refused while a daemon serves the database, and hashes beyond the cost bounds are refused", "[import]") {
  PgServer pg;
  Settings settings{{"database.url", pg.url_setting()}};
  std::string file = write_file(
      "costly.jsonl",
      "{\"email\": \"a@example.com\", \"state\": \"active\", \"created\": 1, \"password_hash\": "
      "\"$scrypt$ln=28,r=8,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdHNhbHRzYWx0c2FsdA\"}\n"
      "{\"email\": \"b@example.com\", \"state\": \"active\", \"created\": 1, \"password_hash\": "
      "\"$2b$31$CbRlTNjrellg1ttHfgRf7OOZlIi0NDW1UqGMG/LEBjloARwB3tF6K\"}\n"
      "{\"email\": \"c@example.com\", \"state\": \"active\", \"created\": 1, \"password_hash\": "
      "\"pbkdf2_sha256$999999999$salt$B35wBEHJcdCSccys7xtpo1CC1pSv7NodUN/7fb8mdCM=\"}\n");
  {
    Daemon daemon(settings);
    daemon.wait_ready();
    auto [status, output] = run_accountsd(settings, "import " + file);
    CHECK(status == 1);
    CHECK(output.find("another accountsd already serves this database") != std::string::npos);
    CHECK(output.find("Stop the daemon first") != std::string::npos);
    Client c(daemon.port());
    CHECK(c.call("PING") == "OK pong");  // the daemon is not disturbed
    CHECK(daemon.stop() == 0);
  }
  auto [status, output] = run_accountsd(settings, "import " + file);
  INFO(output);
  CHECK(status == 1);
  CHECK(output.find("line 1: password_hash: scrypt parameters need over 1 GiB") != std::string::npos);
  CHECK(output.find("line 2: password_hash: bcrypt cost over 16") != std::string::npos);
  CHECK(output.find("line 3: password_hash: PBKDF2 iterations must be 1 to 10000000") != std::string::npos);
  std::remove(file.c_str());
}

TEST_CASE("export then import round-trips every field, and the accounts still log in", "[import]") {
  PgServer first, second;
  Settings one{{"database.url", first.url_setting()}}, two{{"database.url", second.url_setting()}};
  std::map<std::string, std::string> views;
  {
    Daemon daemon(one);
    daemon.wait_ready();
    Client c(daemon.port());
    register_account(c, "pending@example.com", "pending password");
    auto active = register_account(c, "active@example.com", "active password");
    ok_field(c, "CONFIRM " + active.id + " " + active.token, "id");
    ok_field(c, "CHANGE_EMAIL " + active.id + " Moved@Example.org", "id");
    auto off = register_account(c, "off@example.com", "off password");
    ok_field(c, "CONFIRM " + off.id + " " + off.token, "id");
    ok_field(c, "DEACTIVATE " + off.id, "id");
    for (const auto& id : {active.id, off.id}) views[id] = c.call("GET " + id);
    CHECK(daemon.stop() == 0);
  }
  std::string exported = "/tmp/accountsd-" + std::to_string(getpid()) + "-export.jsonl";
  auto [status, output] = run_accountsd(one, "export " + exported);
  INFO(output);
  REQUIRE(status == 0);
  CHECK(output.find("3 accounts written") != std::string::npos);
  struct stat info {};
  REQUIRE(stat(exported.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);  // it holds every password hash
  // Through a pipe, as `jq ... | accountsd import /dev/stdin` would: a file without a size.
  std::tie(status, output) = run_accountsd(two, "import /dev/stdin", "cat " + exported);
  INFO(output);
  REQUIRE(status == 0);
  CHECK(output.find("3 accounts imported from /dev/stdin") != std::string::npos);
  std::string again = exported + ".again";
  std::tie(status, output) = run_accountsd(two, "export " + again);
  REQUIRE(status == 0);
  // Every field of the format survives: the second export is the first, byte for byte.
  CHECK(read_file(again) == read_file(exported));
  CHECK(read_file(exported).find("\"confirmed\"") != std::string::npos);

  Daemon daemon(two);
  daemon.wait_ready();
  Client c(daemon.port());
  for (const auto& [id, view] : views) {
    std::string now = c.call("GET " + id);
    // The view is the same but for the version, which starts again at 1 in the new database.
    CHECK(now.substr(0, now.find(" version=")) == view.substr(0, view.find(" version=")));
  }
  CHECK(starts_with(c.call("LOGIN moved@example.org \"active password\""), "OK "));
  CHECK(starts_with(c.call("LOGIN off@example.com \"off password\""), "ERR DEACTIVATED "));
  CHECK(field(c.call("FIND pending@example.com"), "state") == "unconfirmed");
  std::remove(exported.c_str());
  std::remove(again.c_str());
}
