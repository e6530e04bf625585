#include "accounts/account.hpp"

#include <spdlog/spdlog.h>

#include <asio/co_spawn.hpp>
#include <asio/strand.hpp>
#include <mutex>

namespace accounts {

struct Account::Message {
  Job job;
  Completion<protocol::Reply> done;
  std::unique_ptr<Message> next;
};

Account::Account(AccountRecord record, Presence presence) : presence_(presence), record_(std::move(record)) {}
Account::~Account() = default;

bool Account::add_view_to(protocol::Reply& reply, std::string_view only_if_email) const {
  std::lock_guard guard(lock_);
  if (presence_ != Presence::live) return false;
  if (!only_if_email.empty() && record_.email != only_if_email) return false;
  add_view(reply, record_);
  return true;
}

void Account::publish(AccountRecord next, Presence presence) {
  std::lock_guard guard(lock_);
  record_ = std::move(next);
  presence_ = presence;
}

std::pair<Account::Presence, AccountRecord> Account::committed() const {
  std::lock_guard guard(lock_);
  return {presence_, record_};
}

Account::Sessions Account::sessions_copy() const {
  std::lock_guard guard(lock_);
  return sessions_ ? *sessions_ : Sessions();
}

void Account::replace_sessions(Sessions sessions) {
  auto fresh = sessions.empty() ? nullptr : std::make_unique<Sessions>(std::move(sessions));
  std::lock_guard guard(lock_);
  sessions_.swap(fresh);
}

void Account::publish_presence(Presence presence) {
  std::lock_guard guard(lock_);
  presence_ = presence;
}

asio::awaitable<protocol::Reply> Account::ask(asio::any_io_executor executor, Job job) {
  auto self = shared_from_this();
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
    Message* raw = message.get();
    if (tail_ != nullptr) tail_->next = std::move(message);
    else head_ = std::move(message);
    tail_ = raw;
    if (!running_) running_ = start = true;
  }
  if (!start) return;
  asio::co_spawn(asio::make_strand(executor), drain(shared_from_this()), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("account actor failed: {}", ex.what());
    }
  });
}

std::unique_ptr<Account::Message> Account::next_message() {
  std::lock_guard guard(lock_);
  if (!head_) {
    running_ = false;  // the next enqueue starts a new drain
    return nullptr;
  }
  auto message = std::move(head_);
  head_ = std::move(message->next);
  if (!head_) tail_ = nullptr;
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
