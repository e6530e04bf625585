// protocol/: tokenizer, reply formatting, framing and the command table, without sockets.
#include <catch2/catch.hpp>
#include <cstdio>

#include "protocol/command_table.hpp"
#include "protocol/framer.hpp"
#include "protocol/reply.hpp"
#include "protocol/scan.hpp"
#include "protocol/tokenizer.hpp"

using namespace protocol;
using Words = std::vector<std::string>;

static Words tokens(std::string_view line) {
  Words args;
  auto error = tokenize(line, args);
  if (error) FAIL("unexpected error: " << *error);
  return args;
}

static std::string malformed(std::string_view line) {
  Words args;
  auto error = tokenize(line, args);
  return error ? *error : "";
}

TEST_CASE("tokenizer splits on runs of spaces and tabs", "[tokenizer]") {
  CHECK(tokens("PING") == Words{"PING"});
  CHECK(tokens("  REGISTER\t a@b.c   pw  ") == Words{"REGISTER", "a@b.c", "pw"});
  CHECK(tokens("").empty());
  CHECK(tokens(" \t ").empty());
}

TEST_CASE("tokenizer: quoted arguments and their escapes", "[tokenizer]") {
  CHECK(tokens(R"(AUTH "a b")") == Words{"AUTH", "a b"});
  CHECK(tokens(R"(X "" y)") == Words{"X", "", "y"});
  CHECK(tokens(R"(X "say \"hi\"" "back\\slash")") == Words{"X", "say \"hi\"", "back\\slash"});
  CHECK(tokens("X \"tab\there\"") == Words{"X", "tab\there"});
  CHECK(tokens(R"(X a\b)") == Words{"X", "a\\b"});  // outside quotes a backslash is just a byte
  CHECK(tokens("X \"caf\xc3\xa9\"") == Words{"X", "caf\xc3\xa9"});
}

TEST_CASE("tokenizer rejects what the protocol calls malformed", "[tokenizer]") {
  CHECK(malformed(R"(X "open)") == "unterminated quote");
  CHECK(malformed(R"(X "ends with backslash\)") == "unterminated quote");
  CHECK(malformed(R"(X "bad \n escape")") == "unknown escape in quoted argument");
  CHECK(malformed(R"(X "a"b)") == "text after closing quote");
  CHECK(malformed(R"(X a"b)") == "quote inside an unquoted argument");
  CHECK(malformed(std::string_view("X \0", 3)) == "control byte in request");
  CHECK(malformed("X \x01") == "control byte in request");
  CHECK(malformed("X \x7f") == "control byte in request");
  CHECK(malformed("X \"\x1b[31m\"") == "control byte in request");
  CHECK(malformed("X \xff") == "request is not valid UTF-8");
}

TEST_CASE("tokenizer: one vector reused across requests holds exactly the last request's arguments", "[tokenizer]") {
  Words args;
  REQUIRE_FALSE(tokenize("REGISTER a-rather-long-address@example.com \"pass word\" extra", args));
  CHECK(args == Words{"REGISTER", "a-rather-long-address@example.com", "pass word", "extra"});
  REQUIRE_FALSE(tokenize("GET x", args));
  CHECK(args == Words{"GET", "x"});
  REQUIRE_FALSE(tokenize("\"\" b\\c", args));
  CHECK(args == Words{"", "b\\c"});
  CHECK(tokenize("A B \"unterminated", args) == std::optional<std::string>("unterminated quote"));
  CHECK(args.empty());
  REQUIRE_FALSE(tokenize("   ", args));
  CHECK(args.empty());
  REQUIRE_FALSE(tokenize("PING", args));
  CHECK(args == Words{"PING"});
}

TEST_CASE("UTF-8 validation", "[tokenizer]") {
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("\xe2\x82\xac \xf0\x9f\x98\x80"));  // euro sign, emoji
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));                  // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));              // surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));          // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xe2\x82"));                  // truncated
  CHECK_FALSE(is_valid_utf8("\x80"));                      // lone continuation
}

TEST_CASE("scans: sixteen bytes at a time answer what the one-byte loop answers", "[tokenizer]") {
  // Every length up to three blocks and a tail, every position, and every byte value there: the
  // block path, the tail path and the seam between them.
  for (size_t length = 0; length <= 50; ++length) {
    for (size_t at = 0; at < length; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string text(length, 'a');
        text[at] = static_cast<char>(byte);
        INFO("length " << length << ", byte " << byte << " at " << at);
        for (size_t from : {size_t{0}, at, at + 1}) {
          size_t expected = from;
          while (expected < text.size() && std::string_view(" \t\"").find(text[expected]) == std::string_view::npos)
            ++expected;
          REQUIRE(scan::find_first_of<' ', '\t', '"'>(text, from) == expected);
        }
        bool printable = byte == '\t' || (byte >= 0x20 && byte <= 0x7e);
        REQUIRE(scan::printable_ascii(text) == printable);
      }
    }
  }
  for (size_t length = 2; length <= 50; ++length)  // two hits: the first is the one found
    for (size_t at = 0; at < length; ++at)
      for (size_t later = at + 1; later < length; ++later) {
        std::string text(length, 'a');
        text[at] = '\t';
        text[later] = '"';
        REQUIRE(scan::find_first_of<' ', '\t', '"'>(text) == at);
        REQUIRE(scan::find_first_of<' ', '\t', '"'>(text, at + 1) == later);
      }
  CHECK(scan::find_first_of<'='>("", 0) == 0);
  CHECK(scan::printable_ascii(""));
}

TEST_CASE("tokenizer: a long line with a byte to refuse anywhere is refused for it", "[tokenizer]") {
  std::string line = "REGISTER " + std::string(40, 'x') + " " + std::string(40, 'y');
  for (size_t at = 0; at < line.size(); ++at) {
    std::string bad = line;
    bad[at] = '\x01';
    CHECK(malformed(bad) == "control byte in request");
    bad[at] = '\xff';
    CHECK(malformed(bad) == "request is not valid UTF-8");
  }
  CHECK(tokens(line).size() == 3);
  // A quote after sixteen bytes of an unquoted argument, and escapes past the first block.
  CHECK(malformed("GET " + std::string(20, 'k') + "\"") == "quote inside an unquoted argument");
  CHECK(tokens("SET \"" + std::string(20, 'v') + "\\\"" + std::string(20, 'w') + "\\\\\"")[1] ==
        std::string(20, 'v') + "\"" + std::string(20, 'w') + "\\");
}

TEST_CASE("replies: OK with fields, quoting when needed, ERR with code and message", "[reply]") {
  CHECK(Reply::ok().line() == "OK");
  CHECK(Reply::ok("pong").line() == "OK pong");
  CHECK(Reply::ok().field("id", "abc").field("version", 3).line() == "OK id=abc version=3");
  CHECK(Reply::ok().field("v", "").line() == R"(OK v="")");
  CHECK(Reply::ok().field("v", "a b").line() == R"(OK v="a b")");
  CHECK(Reply::ok().field("v", "a=b").line() == R"(OK v="a=b")");
  CHECK(Reply::ok().field("v", "say \"x\"").line() == R"(OK v="say \"x\"")");
  CHECK(Reply::ok().field("v", "back\\slash").line() == R"(OK v="back\\slash")");
  CHECK(Reply::ok().field("v", "tab\there").line() == "OK v=\"tab\there\"");
  for (char special : std::string_view(" \t\"\\=")) {  // found past the first sixteen bytes too
    std::string value = std::string(37, 'a') + special;
    CHECK(Reply::ok().field("v", value).line().starts_with("OK v=\"aaaa"));
  }
  CHECK(Reply::ok().field("v", std::string(37, 'a')).line() == "OK v=" + std::string(37, 'a'));
  auto e = Reply::error(Error::not_found, "no such account");
  CHECK(e.line() == "ERR NOT_FOUND no such account");
  CHECK_FALSE(e.is_ok());
  CHECK(e.code() == Error::not_found);
  CHECK(Reply::error(Error::internal, "multi\nline").line() == "ERR INTERNAL multi line");
}

TEST_CASE("replies: fields() writes in one pass what field() writes one at a time", "[reply]") {
  // Keys and values of every length from 1 to 70 bytes: each size class of the short copies.
  for (size_t key_size = 1; key_size <= 70; ++key_size)
    for (size_t value_size = 1; value_size <= 70; ++value_size) {
      std::string key(key_size, 'k'), value(value_size, 'v');
      key.back() = 'K';
      value.front() = 'V';
      auto one = Reply::ok().field("a", "1").field(key, value).field("z", "x").line();
      auto run = Reply::ok().fields({{"a", "1"}, {key, value}, {"z", "x"}}).line();
      INFO("key " << key_size << " value " << value_size);
      REQUIRE(run == one);
    }
  // A value the caller could not vouch for is checked, and quoted when it must be.
  for (std::string_view value : {"", "a b", "a=b", "say \"x\"", "back\\slash", "tab\there", "plain"}) {
    auto one = Reply::ok().field("id", "abc").field("email", value).field("n", "3").line();
    auto run = Reply::ok().fields({{"id", "abc"}, {"email", value, false}, {"n", "3"}}).line();
    CHECK(run == one);
  }
  // Appended after fields already there, and followed by more.
  CHECK(Reply::ok().field("x", "y").fields({{"p", "q"}}).field("r", "s t").line() == R"(OK x=y p=q r="s t")");
}

TEST_CASE("a quoted reply value reads back through the tokenizer unchanged", "[reply][tokenizer]") {
  for (std::string value : {"", "plain", "a b", "q\"uote", "back\\slash", "k=v", " \t "}) {
    std::string line = "X ";
    append_value(line, value);
    CHECK(tokens(line) == Words{"X", value});
  }
}

TEST_CASE("every error code has its upper-case wire name", "[reply]") {
  CHECK(code_name(Error::bad_request) == "BAD_REQUEST");
  CHECK(code_name(Error::line_too_long) == "LINE_TOO_LONG");
  CHECK(code_name(Error::too_many_connections) == "TOO_MANY_CONNECTIONS");
  CHECK(code_name(Error::email_taken) == "EMAIL_TAKEN");
  CHECK(code_name(Error::unavailable) == "UNAVAILABLE");
  CHECK(code_name(Error::loading) == "LOADING");
  CHECK(code_name(Error::fenced) == "FENCED");
}

namespace {
std::vector<std::string> frames(LineFramer& f, std::string_view bytes) {
  auto space = f.prepare(bytes.size());
  std::copy(bytes.begin(), bytes.end(), space.begin());
  f.commit(bytes.size());
  std::vector<std::string> out;
  while (auto frame = f.next())
    out.push_back(frame->kind == LineFramer::Kind::too_long ? "<too long>" : std::string(frame->line));
  return out;
}
}  // namespace

TEST_CASE("framer: lines, CRLF, lines split across reads", "[framer]") {
  LineFramer f(16);
  CHECK(frames(f, "PING\nHELP\r\nPAR") == std::vector<std::string>{"PING", "HELP"});
  CHECK(f.pending() == 3);
  CHECK(frames(f, "T") == std::vector<std::string>{});
  CHECK(frames(f, "IAL\n") == std::vector<std::string>{"PARTIAL"});
  CHECK(frames(f, "\n") == std::vector<std::string>{""});
  CHECK(frames(f, "only\rCR inside\n") == std::vector<std::string>{"only\rCR inside"});
}

TEST_CASE("framer: a read shorter than the region prepared for it frames only what arrived", "[framer]") {
  LineFramer f(64);
  auto put = [&f](std::string_view bytes) {
    auto space = f.prepare(1024);  // as the session does: a large region, a short read
    std::fill(space.begin(), space.end(), '\n');  // stale bytes that must never be framed
    std::copy(bytes.begin(), bytes.end(), space.begin());
    f.commit(bytes.size());
    std::vector<std::string> out;
    while (auto frame = f.next()) out.push_back(std::string(frame->line));
    return out;
  };
  CHECK(put("PI") == std::vector<std::string>{});
  CHECK(f.pending() == 2);
  CHECK(f.in_line());
  CHECK(put("NG\nGET x\nFI") == std::vector<std::string>{"PING", "GET x"});
  CHECK(f.pending() == 2);
  CHECK(put("ND y\n") == std::vector<std::string>{"FIND y"});
  CHECK(f.pending() == 0);
  CHECK_FALSE(f.in_line());
}

TEST_CASE("framer: peek shows the complete lines next() will give, takes none, and skips over-long ones", "[framer]") {
  LineFramer f(8);
  auto put = [&f](std::string_view bytes) {
    auto space = f.prepare(bytes.size());
    std::copy(bytes.begin(), bytes.end(), space.begin());
    f.commit(bytes.size());
  };
  auto peeked = [&f](size_t max) {
    std::vector<std::string> out;
    f.peek(max, [&out](std::string_view line) { out.push_back(std::string(line)); });
    return out;
  };
  put("GET a\r\n123456789\nPING\n\nFIND b\nGET");
  CHECK(peeked(10) == std::vector<std::string>{"GET a", "PING", "", "FIND b"});  // not the unfinished "GET"
  CHECK(peeked(2) == std::vector<std::string>{"GET a", "PING"});
  auto taken = [&f] {
    std::vector<std::string> out;
    while (auto frame = f.next())
      out.push_back(frame->kind == LineFramer::Kind::too_long ? "<too long>" : std::string(frame->line));
    return out;
  };
  CHECK(taken() == std::vector<std::string>{"GET a", "<too long>", "PING", "", "FIND b"});
  CHECK(peeked(10).empty());
  // The rest of a line being discarded is not a line.
  put("x 1234567890");
  CHECK(taken() == std::vector<std::string>{"<too long>"});
  put("tail\nGET c\n");
  CHECK(peeked(10) == std::vector<std::string>{"GET c"});
  CHECK(taken() == std::vector<std::string>{"GET c"});
}

TEST_CASE("framer: an over-long line is reported once and discarded as it arrives", "[framer]") {
  LineFramer f(8);
  CHECK(frames(f, "12345678\n") == std::vector<std::string>{"12345678"});    // at the limit
  CHECK(frames(f, "12345678\r\n") == std::vector<std::string>{"12345678"});  // CR does not count
  CHECK(frames(f, "123456789\nOK\n") == std::vector<std::string>{"<too long>", "OK"});
  CHECK(frames(f, "AAAAAAAAAAAAAAAAAAAA") == std::vector<std::string>{"<too long>"});
  CHECK(f.pending() == 0);  // nothing of it is kept
  CHECK(frames(f, std::string(1000, 'B')) == std::vector<std::string>{});
  CHECK(f.pending() == 0);
  CHECK(frames(f, "BBB\nPING\n") == std::vector<std::string>{"PING"});
}

TEST_CASE("command table: case-insensitive lookup, sorted names, no duplicates", "[commands]") {
  CommandTable<int> table;
  table.add({"ping", 0, 0, kPublic, "PING"}, 1);
  table.add({"GET", 1, 1, kNoFlags, "GET <id>"}, 2);
  REQUIRE(table.find("PING") != nullptr);
  CHECK(table.find("pInG")->handler == 1);
  CHECK(table.find("get")->spec.name == "GET");
  CHECK(table.find("nope") == nullptr);
  CHECK(table.find(std::string(100, 'A')) == nullptr);
  CHECK(table.names() == std::vector<std::string>{"GET", "PING"});
  CHECK_THROWS_AS(table.add({"Get", 0, 0, kNoFlags, "GET"}, 3), std::logic_error);
  // A command that answers at once: found like any other, with its immediate set, by any case.
  table.add_immediate({"whoami", 1, 1, kNoFlags, "WHOAMI <token>"},
                      [](Args args) { return Reply::ok().field("token", args[0]); });
  const auto* whoami = table.find("WhoAmI");
  REQUIRE(whoami != nullptr);
  REQUIRE(whoami->immediate);
  std::vector<std::string> args{"abc"};
  CHECK(whoami->immediate(Args(args)).line() == "OK token=abc");
  CHECK(whoami->slot == 2);
  CHECK_FALSE(table.find("GET")->immediate);
  CHECK_THROWS_AS(table.add_immediate({"GET", 1, 1, kNoFlags, "GET <id>"}, [](Args) { return Reply::ok(); }),
                  std::logic_error);
}

TEST_CASE("command table: with many commands, each is found by every case and nothing else is", "[commands]") {
  CommandTable<int> table;
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) {  // all of one length: no name is a prefix of another
    char name[16];
    std::snprintf(name, sizeof name, "CMD_%07d", i * 7919);
    names.push_back(name);
  }
  names.push_back(std::string(32, 'L'));  // the longest a name may be
  for (size_t i = 0; i < names.size(); ++i) table.add({names[i], 0, 0, kNoFlags, names[i]}, static_cast<int>(i));
  CHECK_THROWS_AS(table.add({std::string(33, 'L'), 0, 0, kNoFlags, "too long"}, -1), std::logic_error);
  for (size_t i = 0; i < names.size(); ++i) {
    std::string lower = names[i], mixed = names[i];
    for (size_t j = 0; j < lower.size(); ++j) {
      lower[j] = static_cast<char>(std::tolower(static_cast<unsigned char>(lower[j])));
      if (j % 2 == 0) mixed[j] = lower[j];
    }
    for (const auto& name : {names[i], lower, mixed}) {
      const auto* entry = table.find(name);
      REQUIRE(entry != nullptr);
      CHECK(entry->handler == static_cast<int>(i));
      CHECK(entry->slot == i);
    }
    // Every prefix, and the name with one more byte, is no command.
    for (size_t n = 0; n < names[i].size(); ++n) CHECK(table.find(std::string_view(names[i]).substr(0, n)) == nullptr);
    CHECK(table.find(names[i] + "X") == nullptr);
    CHECK(table.find(names[i] + '\0') == nullptr);
  }
  CHECK(table.find("") == nullptr);
  CHECK(table.size() == names.size());
}

TEST_CASE("precheck: arity, then authentication, then loading, then fencing", "[commands]") {
  CommandSpec get{"GET", 1, 1, kNoFlags, "GET <id>"};
  CommandSpec ping{"PING", 0, 0, kPublic, "PING"};
  CommandSpec help{"HELP", 0, 0, kPublic | kServedWhileLoading, "HELP"};
  RequestContext open{true, false, {}, {}};
  RequestContext locked{false, false, {}, {}};
  RequestContext loading{true, true, "rows=10 percent=1", {}};
  RequestContext fenced{true, false, {}, "lost the database lease"};

  CHECK_FALSE(precheck(get, 1, open));
  CHECK(precheck(get, 0, open)->line() == "ERR BAD_REQUEST wrong number of arguments; usage: GET <id>");
  CHECK(precheck(get, 2, open)->code() == Error::bad_request);
  CHECK(precheck(get, 2, locked)->code() == Error::bad_request);  // arity first
  CHECK(precheck(get, 1, locked)->code() == Error::auth_required);
  CHECK_FALSE(precheck(ping, 0, locked));
  CHECK(precheck(get, 1, loading)->line() == "ERR LOADING rows=10 percent=1");
  CHECK(precheck(ping, 0, loading)->code() == Error::loading);  // PING is the readiness probe
  CHECK_FALSE(precheck(help, 0, loading));
  CHECK(precheck(get, 1, fenced)->line() == "ERR FENCED lost the database lease");
  CHECK(precheck(ping, 0, fenced)->code() == Error::fenced);  // not ready: not the authority
  CHECK_FALSE(precheck(help, 0, fenced));
  CHECK(precheck(get, 1, RequestContext{false, false, {}, "x"})->code() == Error::auth_required);
}
