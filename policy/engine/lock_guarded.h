// Data and the mutex that guards it, in one type: the only way to the data
// is through with(), under the lock, so lock discipline is checked by the
// compiler rather than by comments. wait_until() waits on a condition of
// the data; with() wakes the waiters after every change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

namespace mtasts::policy {

template <class T>
class LockGuarded {
 public:
  template <class... Args>
  explicit LockGuarded(Args&&... args) : value_(std::forward<Args>(args)...) {}
  LockGuarded(const LockGuarded&) = delete;
  LockGuarded& operator=(const LockGuarded&) = delete;

  // Runs fn(T&) under the lock and returns its result; waiters re-check
  // their condition afterwards. fn must not block on I/O nor call back in.
  template <class Fn>
  decltype(auto) with(Fn&& fn) {
    std::lock_guard lock(mu_);
    // Declared after the lock: waiters are woken before it is released, so
    // one that then destroys this object never races the notification.
    struct Notify {
      std::condition_variable& changed;
      ~Notify() { changed.notify_all(); }
    } notify{changed_};
    return std::forward<Fn>(fn)(value_);
  }
  template <class Fn>
  decltype(auto) with(Fn&& fn) const {
    std::lock_guard lock(mu_);
    return std::forward<Fn>(fn)(std::as_const(value_));
  }

  // Waits until done(const T&) holds or `deadline` passes; true when it holds.
  template <class Pred>
  bool wait_until(std::chrono::steady_clock::time_point deadline, Pred done) const {
    std::unique_lock lock(mu_);
    return changed_.wait_until(lock, deadline, [&] { return done(std::as_const(value_)); });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  T value_;
};

}  // namespace mtasts::policy
