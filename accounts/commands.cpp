#include "accounts/commands.hpp"

#include "accounts/service.hpp"

namespace accounts {

std::vector<Command> account_commands(AccountService& s) {
  using namespace protocol;
  auto spec = [](const char* name, int args, unsigned flags, const char* usage, const char* category) {
    return CommandSpec{name, args, args, flags, usage, category};
  };
  return {
      {spec("REGISTER", 2, kMutating, "REGISTER <email> <password>", "self_service"),
       [&s](Args a) { return s.register_account(a[0], a[1]); }},
      {spec("CONFIRM", 2, kMutating, "CONFIRM <id> <token>", "self_service"), [&s](Args a) { return s.confirm(a[0], a[1]); }},
      {spec("RESEND", 1, kMutating, "RESEND <id>", "self_service"), [&s](Args a) { return s.resend(a[0]); }},
      {CommandSpec{"LOGIN", 2, 3, kNoFlags, "LOGIN <email> <password> [<source>]", "login"},
       [&s](Args a) { return s.login(a[0], a[1], a.size() > 2 ? a[2] : std::string()); }},
      {spec("GET", 1, kNoFlags, "GET <id>", "read"), {}, [&s](Args a) { return s.get(a[0]); },
       [&s](std::string_view id) { s.read_ahead_get(id); }},
      {spec("FIND", 1, kNoFlags, "FIND <email>", "read"), {}, [&s](Args a) { return s.find(a[0]); },
       [&s](std::string_view email) { s.read_ahead_find(email); }},
      {spec("CHANGE_EMAIL", 2, kMutating, "CHANGE_EMAIL <id> <new_email>", "self_service"),
       [&s](Args a) { return s.change_email(a[0], a[1]); }},
      {CommandSpec{"CHANGE_PASSWORD", 3, 5, kMutating,
                   "CHANGE_PASSWORD <id> <old_password> <new_password> [<source> [<keep_session_id>]]", "self_service"},
       [&s](Args a) {
         return s.change_password(a[0], a[1], a[2], a.size() > 3 ? a[3] : std::string(), a.size() > 4 ? a[4] : std::string());
       }},
      {spec("RESET_REQUEST", 1, kMutating, "RESET_REQUEST <email>", "self_service"), [&s](Args a) { return s.reset_request(a[0]); }},
      {spec("RESET_PASSWORD", 3, kMutating, "RESET_PASSWORD <id> <token> <new_password>", "self_service"),
       [&s](Args a) { return s.reset_password(a[0], a[1], a[2]); }},
      {spec("DEACTIVATE", 1, kMutating, "DEACTIVATE <id>", "admin"), [&s](Args a) { return s.deactivate(a[0]); }},
      {spec("REACTIVATE", 1, kMutating, "REACTIVATE <id>", "admin"), [&s](Args a) { return s.reactivate(a[0]); }},
      {spec("DELETE", 1, kMutating, "DELETE <id>", "admin"), [&s](Args a) { return s.remove(a[0]); }},
      {CommandSpec{"LOGIN_SESSION", 2, 4, kMutating, "LOGIN_SESSION <email> <password> [<source> [<label>]]", "login"},
       [&s](Args a) {
         return s.login_session(a[0], a[1], a.size() > 2 ? a[2] : std::string(), a.size() > 3 ? a[3] : std::string());
       }},
      {spec("WHOAMI", 1, kNoFlags, "WHOAMI <session_token>", "read"), {}, [&s](Args a) { return s.whoami(a[0]); },
       [&s](std::string_view token) { s.read_ahead_whoami(token); }},
      {spec("LOGOUT", 1, kMutating, "LOGOUT <session_token>", "login"), [&s](Args a) { return s.logout(a[0]); }},
      {CommandSpec{"LOGOUT_ALL", 1, 2, kMutating, "LOGOUT_ALL <id> [<keep_session_id>]", "self_service"},
       [&s](Args a) { return s.logout_all(a[0], a.size() > 1 ? a[1] : std::string()); }},
      {spec("SESSIONS", 1, kNoFlags, "SESSIONS <id>", "admin"), [&s](Args a) { return s.list_sessions(a[0]); }},
  };
}

}  // namespace accounts
