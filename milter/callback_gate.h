// The door between libmilter's threads and the daemon's objects.
//
// libmilter runs callbacks on its own detached threads, and they can still
// call in after smfi_main() returns (a connection the MTA keeps open). The
// daemon must therefore stop new callbacks *before* it waits for running
// ones, and must not destroy what they use while one is inside. A callback
// enters once (one load of the pointer, counted under the same lock), uses
// the object it got, and leaves when its Pass goes out of scope; close()
// shuts the door first and then waits for the passes still out.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

namespace mtasts::milter {

template <class T>
class CallbackGate {
 public:
  // Held by a callback while it uses the object; releasing it may let
  // close() return.
  class Pass {
   public:
    Pass(CallbackGate& gate, T& object) : gate_(&gate), object_(&object) {}
    Pass(Pass&& other) noexcept : gate_(other.gate_), object_(other.object_) { other.gate_ = nullptr; }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    Pass& operator=(Pass&&) = delete;
    ~Pass() {
      if (gate_ != nullptr) gate_->leave();
    }
    T& operator*() const { return *object_; }
    T* operator->() const { return object_; }

   private:
    CallbackGate* gate_;
    T* object_;
  };

  // Lets callbacks in to `object` (which must outlive close()).
  void open(T& object) {
    std::lock_guard lock(mu_);
    object_ = &object;
  }

  // A pass while open; nullopt once closed (the caller answers without it).
  std::optional<Pass> enter() {
    std::lock_guard lock(mu_);
    if (object_ == nullptr) return std::nullopt;
    ++inside_;
    return std::optional<Pass>(std::in_place, *this, *object_);
  }

  // Shuts the door, then waits until `give_up` for the passes still out.
  // True when none is left: the object may then be destroyed.
  bool close(std::chrono::steady_clock::time_point give_up) {
    std::unique_lock lock(mu_);
    object_ = nullptr;
    return left_.wait_until(lock, give_up, [this] { return inside_ == 0; });
  }

  int inside() const {
    std::lock_guard lock(mu_);
    return inside_;
  }

 private:
  void leave() {
    std::lock_guard lock(mu_);
    if (--inside_ == 0) left_.notify_all();
  }

  mutable std::mutex mu_;
  std::condition_variable left_;
  T* object_ = nullptr;  // guarded by mu_
  int inside_ = 0;       // guarded by mu_
};

}  // namespace mtasts::milter
