#pragma once
// Handing libmilter a listening socket it did not open: systemd's socket
// activation (milter/socket_activation.h). libmilter has no call that takes
// a descriptor; smfi_opensocket() always runs socket(), bind() and listen()
// on the address of smfi_setconn(). libmilter is linked statically with
// `-Wl,--wrap=socket,--wrap=bind` (milter/CMakeLists.txt), so those calls
// come through here first: while a descriptor is handed over, the next
// socket() on the same thread returns it and bind() on it does nothing
// (listen() on a socket already listening only sets its backlog). Every
// other call, on every other thread (probes, DNS, the socketmap), goes to
// the real function untouched.
//
// Thread-safety: the handover belongs to the thread that starts it.

namespace mtasts::milter {

// The next socket() call of this thread returns `fd`, and a bind() of `fd`
// succeeds without binding, until end_listener_handover().
void begin_listener_handover(int fd) noexcept;
void end_listener_handover() noexcept;

}  // namespace mtasts::milter
