// accounts/: the state machine's whole table, what each change does to pending tokens, the login
// throttle and the actors' strands.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <typeinfo>

#include "accounts/account.hpp"
#include "accounts/lifecycle.hpp"
#include "accounts/secrets.hpp"
#include "accounts/throttle.hpp"

using namespace accounts;
using protocol::Error;

TEST_CASE("the state machine: every action from every state", "[lifecycle]") {
  using S = State;
  using A = Action;
  struct Row {
    A action;
    S from;
    bool ever_confirmed;
    bool allowed;
    S next;
    Error error;
  };
  const Error none = Error::internal;
  const Row table[] = {
      {A::confirm, S::unconfirmed, false, true, S::active, none},
      {A::confirm, S::active, true, false, S::active, Error::invalid_state},
      {A::confirm, S::deactivated, false, false, S::deactivated, Error::invalid_state},
      {A::resend, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::resend, S::active, true, false, S::active, Error::invalid_state},
      {A::resend, S::deactivated, false, false, S::deactivated, Error::invalid_state},
      {A::login, S::unconfirmed, false, false, S::unconfirmed, Error::not_confirmed},
      {A::login, S::active, true, true, S::active, none},
      {A::login, S::deactivated, true, false, S::deactivated, Error::deactivated},
      {A::change_email, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::change_email, S::active, true, true, S::active, none},
      {A::change_email, S::deactivated, true, true, S::deactivated, none},
      {A::change_password, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::change_password, S::active, true, true, S::active, none},
      {A::change_password, S::deactivated, true, true, S::deactivated, none},
      {A::reset_request, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::reset_request, S::active, true, true, S::active, none},
      {A::reset_request, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::reset_password, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::reset_password, S::active, true, true, S::active, none},
      {A::reset_password, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::deactivate, S::unconfirmed, false, true, S::deactivated, none},
      {A::deactivate, S::active, true, true, S::deactivated, none},
      {A::deactivate, S::deactivated, true, false, S::deactivated, Error::invalid_state},
      {A::reactivate, S::unconfirmed, false, false, S::unconfirmed, Error::invalid_state},
      {A::reactivate, S::active, true, false, S::active, Error::invalid_state},
      {A::reactivate, S::deactivated, true, true, S::active, none},
      {A::reactivate, S::deactivated, false, true, S::unconfirmed, none},
      {A::remove, S::unconfirmed, false, true, S::unconfirmed, none},
      {A::remove, S::active, true, true, S::active, none},
      {A::remove, S::deactivated, true, true, S::deactivated, none},
  };
  for (const auto& row : table) {
    INFO("action " << static_cast<int>(row.action) << " from " << state_name(row.from));
    auto t = transition(row.from, row.action, row.ever_confirmed);
    CHECK(t.allowed == row.allowed);
    if (row.allowed) CHECK(t.next == row.next);
    else CHECK(t.error == row.error);
  }
}

TEST_CASE("pending tokens: what every change ends", "[lifecycle][tokens]") {
  using A = Action;
  struct Row {
    A action;
    bool keeps_confirm;
    bool keeps_reset;
  };
  // The table of docs/PROTOCOL.md, "Pending tokens".
  const Row table[] = {
      {A::confirm, true, true},          {A::resend, true, true},
      {A::login, true, true},            {A::change_email, false, false},
      {A::change_password, true, false}, {A::reset_request, true, true},
      {A::reset_password, true, false},  {A::deactivate, true, false},
      {A::reactivate, true, true},       {A::remove, false, false},
  };
  for (const auto& row : table) {
    INFO("action " << static_cast<int>(row.action));
    AccountRecord r;
    r.confirm = PendingToken(digest_token("c"), 1);
    r.reset = PendingToken(digest_token("r"), 1);
    drop_invalidated_tokens(row.action, r);
    CHECK(r.confirm.present() == row.keeps_confirm);
    CHECK(r.reset.present() == row.keeps_reset);
  }
}

TEST_CASE("login throttle: per source, an hourly limit across sources, known sources exempt", "[throttle]") {
  init_secrets();
  ThrottlePolicy policy{3, 4000, 10};
  LoginThrottle t;
  SourceKey owner = source_key("198.51.100.7"), attacker = source_key("203.0.113.9");
  int64_t now = 1'000'000;
  t.succeeded(owner);
  CHECK(!t.failed(policy, attacker, now));
  CHECK(!t.failed(policy, attacker, now));
  CHECK(t.failed(policy, attacker, now));  // the third failure locks out (accountsd_lockouts_total counts it)
  CHECK(t.wait_ms(policy, attacker, now) == 4000);   // the attacker's source is locked out
  CHECK(t.wait_ms(policy, owner, now) == 0);         // the owner is not
  CHECK(t.wait_ms(policy, source_key("192.0.2.1"), now) == 0);
  CHECK(t.wait_ms(policy, attacker, now + 4001) == 0);  // a lock always runs out

  // Ten failures from ten sources spend the hour: new sources wait, known ones do not.
  LoginThrottle spread;
  spread.succeeded(owner);
  for (int i = 0; i < 10; ++i) spread.failed(policy, source_key("10.0.0." + std::to_string(i)), now + i);
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 10) > 3'500'000);
  CHECK(spread.wait_ms(policy, owner, now + 10) == 0);
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 3'600'001) == 0);  // the hour is over
  spread.password_changed();
  CHECK(spread.wait_ms(policy, source_key("10.0.1.1"), now + 10) == 0);
  CHECK(spread.wait_ms(policy, owner, now + 10) == 0);

  // IPv6 counts per /64; IPv4-mapped addresses as IPv4; other text as it is.
  CHECK(source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9"));
  CHECK(source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1"));
  CHECK(source_key("::ffff:192.0.2.1") == source_key("192.0.2.1"));
  CHECK(source_key("device-42") != source_key("device-43"));
  CHECK(source_key("") == source_key(""));

  // Tracking is bounded per account, and what is forgotten first is an unlocked streak.
  LoginThrottle many;
  for (int i = 0; i < 3; ++i) many.failed(policy, attacker, now);
  for (int i = 0; i < 40; ++i) many.failed(policy, source_key("192.0.2." + std::to_string(i)), now);
  CHECK(many.wait_ms(policy, attacker, now) > 0);

  UnknownEmailThrottles unknown(2);
  for (int i = 0; i < 3; ++i) unknown.failed(policy, email_key("a@x.io"), attacker, now);
  CHECK(unknown.wait_ms(policy, email_key("a@x.io"), attacker, now) == 4000);
  unknown.failed(policy, email_key("b@x.io"), attacker, now);
  unknown.failed(policy, email_key("c@x.io"), attacker, now);
  CHECK(unknown.size() == 2);  // bounded: the oldest is forgotten
}

TEST_CASE("actor_strand: a fresh strand on the caller's own event loop, from the loop or from a strand of it", "[actor]") {
  using Strand = asio::strand<asio::io_context::executor_type>;
  asio::io_context mine(1), other(1);
  auto caller = asio::make_strand(mine);
  for (asio::any_io_executor near : {asio::any_io_executor(caller), asio::any_io_executor(mine.get_executor())}) {
    asio::any_io_executor actor = actor_strand(near);
    // One strand over the loop, not a strand of a strand. (target<T>() does not check T in Asio 1.22.)
    REQUIRE(actor.target_type() == typeid(Strand));
    const Strand* strand = actor.target<Strand>();
    CHECK(&asio::query(strand->get_inner_executor(), asio::execution::context) == &mine);
    CHECK(*strand != caller);  // the actor does not run under its caller's strand
  }
  // Work on the actor's strand is run by the caller's loop and by no other.
  bool ran = false;
  asio::post(actor_strand(asio::any_io_executor(caller)), [&ran] { ran = true; });
  other.run();
  CHECK_FALSE(ran);
  mine.run();
  CHECK(ran);
}
