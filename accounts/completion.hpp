#pragma once
// Bridging work that finishes on another thread (the password pool, the database writer, an
// actor) back into the coroutine that waits for it. Includes Asio: keep it out of headers that
// everything includes.
#include <asio/async_result.hpp>
#include <asio/associated_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>
#include <type_traits>
#include <utility>

namespace accounts {

// A move-only std::function: completion handlers of coroutines cannot be copied.
template <class Signature>
class UniqueFunction;

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
 public:
  UniqueFunction() = default;
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, UniqueFunction>)
  UniqueFunction(F f) : impl_(std::make_unique<Impl<F>>(std::move(f))) {}

  explicit operator bool() const { return impl_ != nullptr; }
  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct Impl : Base {
    explicit Impl(F f) : f(std::move(f)) {}
    R call(Args... args) override { return f(std::forward<Args>(args)...); }
    F f;
  };
  std::unique_ptr<Base> impl_;
};

template <class T>
using Completion = UniqueFunction<void(T)>;

// Suspends the calling coroutine, calls start(done), and resumes the coroutine on its own
// executor with the value that `done` is later called with, from whichever thread calls it.
//
// g++ 12 trap (docs/ARCHITECTURE.md): a brace-initialized temporary (an aggregate such as
// Change{...}, or a capturing lambda) written inside a co_await expression is destroyed twice.
// Name it first:
//   auto start = [...](Completion<T> done) { ... };
//   T value = co_await suspend_until<T>(std::move(start));
template <class T, class Start>
asio::awaitable<T> suspend_until(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      [start = std::move(start)](auto handler) mutable {
        start(Completion<T>([handler = std::move(handler)](T value) mutable {
          auto executor = asio::get_associated_executor(handler);
          asio::post(executor, [handler = std::move(handler), value = std::move(value)]() mutable {
            std::move(handler)(std::move(value));
          });
        }));
      },
      asio::use_awaitable);
}

}  // namespace accounts
