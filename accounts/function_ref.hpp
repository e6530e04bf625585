#pragma once
// A non-owning reference to a callable, for a call that completes before the callee returns: the
// indexes' visit functions take any lambda at the call site and hand one compiled function a
// FunctionRef, without std::function's allocation.
#include <utility>

namespace accounts {

template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
  explicit FunctionRef(F& f)
      : object_(&f), call_([](void* o, Args... a) -> R { return (*static_cast<F*>(o))(std::forward<Args>(a)...); }) {}
  R operator()(Args... a) const { return call_(object_, std::forward<Args>(a)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

}  // namespace accounts
