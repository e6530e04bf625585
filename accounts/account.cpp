#include "accounts/account.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <cassert>
#include <iterator>
#include <mutex>
#include <typeinfo>

namespace accounts {

struct Account::Message {
  Job job;
  Completion<protocol::Reply> done;
  std::unique_ptr<Message> next;
};

struct Account::Mailbox {
  std::unique_ptr<Message> head;
  Message* tail = nullptr;
};

Account::Account(AccountRecord record, Presence presence) : presence_(presence), record_(std::move(record)) {}
Account::~Account() { delete extras_.load(std::memory_order_relaxed); }

bool Account::add_view_to(protocol::Reply& reply, std::string_view only_if_email) const {
  std::lock_guard guard(lock_);
  if (presence_ != Presence::live) return false;
  if (!only_if_email.empty() && record_.email != only_if_email) return false;
  add_view(reply, record_);
  return true;
}

namespace {

// Every field but the id, which is fixed at construction: the id index reads it without the lock,
// and rewriting even the same bytes meanwhile would be a data race. The size check stops the build
// when a field is added and not moved here.
void assign_all_but_id(AccountRecord& to, AccountRecord&& from) {
  static_assert(sizeof(AccountRecord) == 112, "AccountRecord changed: move the new field here too");
  to.email = std::move(from.email);
  to.state = from.state;
  to.password_hash = std::move(from.password_hash);
  to.created_ms = from.created_ms;
  to.updated_ms = from.updated_ms;
  to.confirmed_ms = from.confirmed_ms;
  to.version = from.version;
  to.confirm = std::move(from.confirm);
  to.reset = std::move(from.reset);
}

}  // namespace

void Account::publish(AccountRecord next, Presence presence) {
  assert(next.id == record_.id);
  std::lock_guard guard(lock_);
  assign_all_but_id(record_, std::move(next));
  presence_ = presence;
}

std::pair<Account::Presence, AccountRecord> Account::committed() const {
  std::lock_guard guard(lock_);
  return {presence_, record_};
}

Account::Extras& Account::extras() {
  if (Extras* e = extras_.load(std::memory_order_acquire)) return *e;
  std::lock_guard guard(lock_);
  Extras* e = extras_.load(std::memory_order_relaxed);
  if (!e) extras_.store(e = new Extras(), std::memory_order_release);
  return *e;
}

Account::Sessions Account::sessions_copy() const {
  std::lock_guard guard(lock_);
  const Extras* e = existing_extras();
  return e ? e->sessions : Sessions();
}

void Account::replace_sessions(Sessions sessions) {
  if (!existing_extras() && sessions.empty()) return;
  Extras& e = extras();
  std::lock_guard guard(lock_);
  e.sessions.swap(sessions);  // the old list is freed after the lock, with the argument
}

void Account::adopt_session(SessionRef session) {
  Extras& e = extras();
  std::lock_guard guard(lock_);
  Sessions& list = e.sessions;
  // One slot at a time leaves no slack in the short lists that nearly every account has; a list
  // past 64 (only where sessions.max_per_account was raised) grows as usual instead.
  if (list.size() == list.capacity()) list.reserve(list.size() < 64 ? list.size() + 1 : 2 * list.size());
  auto at = list.end();  // the table holds rows roughly in the order they were written: look from the back
  while (at != list.begin() && (*std::prev(at))->created_ms > session->created_ms) --at;
  list.insert(at, std::move(session));
}

void Account::publish_presence(Presence presence) {
  std::lock_guard guard(lock_);
  presence_ = presence;
}

asio::any_io_executor actor_strand(const asio::any_io_executor& near) {
  using Loop = asio::io_context::executor_type;
  // Asio 1.22's any_executor::target<T>() casts without checking the type: check it first.
  if (near.target_type() == typeid(asio::strand<Loop>))
    return asio::make_strand(near.target<asio::strand<Loop>>()->get_inner_executor());
  if (near.target_type() == typeid(Loop)) return asio::make_strand(*near.target<Loop>());
  return asio::make_strand(near);  // another kind of executor: a strand of it
}

asio::awaitable<protocol::Reply> Account::ask(Job job) {
  auto self = shared_from_this();
  auto executor = co_await asio::this_coro::executor;
  auto post_to_mailbox = [self, executor, job = std::move(job)](Completion<protocol::Reply> done) mutable {
    auto message = std::make_unique<Message>(Message{std::move(job), std::move(done), nullptr});
    self->enqueue(std::move(message), executor);
  };
  co_return co_await suspend_until<protocol::Reply>(std::move(post_to_mailbox));
}

void Account::tell(const asio::any_io_executor& executor, Job job) {
  Completion<protocol::Reply> ignore = [](protocol::Reply) {};
  enqueue(std::make_unique<Message>(Message{std::move(job), std::move(ignore), nullptr}), executor);
}

void Account::enqueue(std::unique_ptr<Message> message, const asio::any_io_executor& executor) {
  bool start = false;
  {
    std::lock_guard guard(lock_);
    if (!mailbox_) mailbox_ = std::make_unique<Mailbox>();
    Message* raw = message.get();
    if (mailbox_->tail != nullptr) mailbox_->tail->next = std::move(message);
    else mailbox_->head = std::move(message);
    mailbox_->tail = raw;
    if (!running_) running_ = start = true;
  }
  if (!start) return;
  asio::co_spawn(actor_strand(executor), drain(shared_from_this()), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("account actor failed: {}", ex.what());
    }
  });
}

std::unique_ptr<Account::Message> Account::next_message() {
  std::unique_ptr<Mailbox> empty;  // freed after the lock
  std::lock_guard guard(lock_);
  if (!mailbox_->head) {
    running_ = false;  // the next enqueue starts a new drain
    empty = std::move(mailbox_);
    return nullptr;
  }
  auto message = std::move(mailbox_->head);
  mailbox_->head = std::move(message->next);
  if (!mailbox_->head) mailbox_->tail = nullptr;
  return message;
}

asio::awaitable<void> Account::drain(std::shared_ptr<Account> self) {
  while (auto message = self->next_message()) {
    auto reply = protocol::Reply::error(protocol::Error::internal, "internal error");
    try {
      reply = co_await message->job(*self);
    } catch (const std::exception& e) {
      spdlog::error("account {}: job failed: {}", self->record_.id.to_string(), e.what());
    }
    message->done(std::move(reply));
  }
}

}  // namespace accounts
