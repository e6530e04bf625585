#include "protocol/tokenizer.hpp"

#include "protocol/scan.hpp"

namespace protocol {
namespace {

bool is_separator(char c) { return c == ' ' || c == '\t'; }

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    char32_t cp;
    char32_t min;
    if ((c & 0xe0) == 0xc0) { extra = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { extra = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { extra = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += extra + 1;
  }
  return true;
}

std::optional<std::string> tokenize(std::string_view line, std::vector<std::string>& args) {
  // The strings of the last request are reused for this one's arguments, so that a connection
  // repeating one kind of request tokenizes without allocating. `used` counts this one's.
  size_t used = 0;
  auto next_arg = [&]() -> std::string& {
    if (used == args.size()) args.emplace_back();
    std::string& arg = args[used++];
    arg.clear();
    return arg;
  };
  auto finish = [&](std::optional<std::string> result) {
    args.resize(result ? 0 : used);
    return result;
  };
  if (!scan::printable_ascii(line)) {
    for (char c : line) {
      if (is_control(c)) return finish("control byte in request");
    }
    if (!is_valid_utf8(line)) return finish("request is not valid UTF-8");
  }

  size_t i = 0;
  while (true) {
    while (i < line.size() && is_separator(line[i])) ++i;
    if (i == line.size()) return finish(std::nullopt);

    std::string& arg = next_arg();
    if (line[i] != '"') {
      size_t start = i;
      i = scan::find_first_of<' ', '\t', '"'>(line, i);
      if (i < line.size() && line[i] == '"') return finish("quote inside an unquoted argument");
      arg.assign(line.data() + start, i - start);
      continue;
    }

    ++i;  // opening quote
    bool closed = false;
    while (i < line.size()) {
      size_t run = scan::find_first_of<'"', '\\'>(line, i);
      arg.append(line.data() + i, run - i);
      i = run;
      if (i == line.size()) break;
      if (line[i++] == '"') {
        closed = true;
        break;
      }
      if (i == line.size()) break;  // a backslash at the end
      char escaped = line[i++];
      if (escaped != '"' && escaped != '\\') return finish("unknown escape in quoted argument");
      arg += escaped;
    }
    if (!closed) return finish("unterminated quote");
    if (i < line.size() && !is_separator(line[i])) return finish("text after closing quote");
  }
}

}  // namespace protocol
