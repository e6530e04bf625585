#include "accounts/email.hpp"

namespace accounts {

EmailCheck check_email(std::string_view address) {
  auto reject = [](std::string why) { return EmailCheck{std::nullopt, std::move(why)}; };
  if (address.size() > 254) return reject("email is longer than 254 bytes");
  for (char c : address) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return reject("email contains a space or control character");
  }
  auto at = address.find('@');
  if (at == std::string_view::npos) return reject("email has no @");
  if (address.find('@', at + 1) != std::string_view::npos) return reject("email has more than one @");
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  if (local.empty() || local.size() > 64) return reject("local part must be 1 to 64 bytes");

  size_t labels = 0;
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    std::string_view label = domain.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty()) return reject("domain needs two or more non-empty labels");
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return reject("domain needs two or more non-empty labels");

  std::string normalized(address);
  for (char& c : normalized) c = fold_email_char(c);
  return EmailCheck{std::move(normalized), {}};
}

}  // namespace accounts
