#include "milter/milter_callbacks.h"

#include <libmilter/mfapi.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <limits>
#include <optional>

#include "milter/callback_gate.h"
#include "policy/engine/refusal_log.h"

namespace mtasts::milter {
namespace {

// Closed before the daemon installs its context and once it stops: a callback
// then answers without it (see CallbackGate for why). Never destroyed: a
// libmilter thread may still call in while the process exits.
CallbackGate<MilterContext>& gate() {
  static auto* const the_gate = new CallbackGate<MilterContext>;
  return *the_gate;
}

// Connections libmilter has open with us (for the stop log line and the cap).
std::atomic<int> g_open_connections{0};
// Connections served at once (set_connection_limit); more are refused at
// negotiation, which makes libmilter close them: each open one costs a
// thread and a descriptor, and at the descriptor limit libmilter spins on
// accept() and DNS sockets fail.
std::atomic<int> g_connection_limit{std::numeric_limits<int>::max()};
policy::RefusalLog g_connection_refusals;

// Refuses the connection before any state exists for it. Concurrent
// negotiations may overshoot the limit by a few; it bounds a flood, not a count.
bool over_connection_limit() {
  if (g_open_connections.load() < g_connection_limit.load()) return false;
  if (const int refused = g_connection_refusals.note(std::time(nullptr)); refused > 0)
    spdlog::warn(
        "milter event=overloaded what=connections open={} limit={} refused={} note=\"connection closed at "
        "negotiation; the MTA applies its milter_default_action\"",
        g_open_connections.load(), g_connection_limit.load(), refused);
  return true;
}

std::optional<std::string_view> macro(SMFICTX* ctx, const char* name) {
  const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
  if (!value) return std::nullopt;
  return std::string_view(value);
}

// What libmilter keeps for one connection (its "priv"): the session and
// whether the MTA agreed not to wait for our reply to MAIL.
struct Connection {
  std::unique_ptr<Session> session;
  bool mail_needs_no_reply = false;
};

Connection* connection_of(SMFICTX* ctx) { return static_cast<Connection*>(smfi_getpriv(ctx)); }

Connection& connection_for(SMFICTX* ctx) {
  if (Connection* c = connection_of(ctx)) return *c;
  auto* c = new Connection;  // owned by libmilter's priv until close
  smfi_setpriv(ctx, c);
  ++g_open_connections;
  return *c;
}

Session* session_of(SMFICTX* ctx) {
  Connection* c = connection_of(ctx);
  return c ? c->session.get() : nullptr;
}

Session& session_for(SMFICTX* ctx, const MilterContext& context) {
  Connection& c = connection_for(ctx);
  if (!c.session) {
    const Settings settings = context.settings();
    c.session = std::make_unique<Session>(context.check(), settings.config, settings.overrides);
  }
  return *c.session;
}

sfsistat error_status(const MilterContext& context) {
  return context.config()->decision.error_action == Action::Tempfail ? SMFIS_TEMPFAIL : SMFIS_CONTINUE;
}

void set_reply(SMFICTX* ctx, const char* code, const char* xcode, const std::string& text);

// A stage the daemon can no longer decide (it is stopping): a recipient is
// deferred, never let through unchecked; the MTA's retry reaches the next
// daemon. Other stages change nothing.
sfsistat stopping_rcpt(SMFICTX* ctx) {
  set_reply(ctx, "451", "4.7.5", "MTA-STS: shutting down, try again later");
  return SMFIS_TEMPFAIL;
}

void log_lines(const std::vector<std::string>& lines) {
  for (const auto& line : lines) spdlog::info("{}", line);
}

// smfi_setreply treats '%' specially; our texts never need it.
std::string reply_safe(std::string text) {
  for (auto& c : text)
    if (c == '%' || c == '\r' || c == '\n') c = '_';
  return text;
}

void set_reply(SMFICTX* ctx, const char* code, const char* xcode, const std::string& text) {
  const std::string safe = reply_safe(text);
  smfi_setreply(ctx, const_cast<char*>(code), const_cast<char*>(xcode), const_cast<char*>(safe.c_str()));
}

// Stages we never use: the MTA does not send their command and waits for no
// reply. It still sends their macros ('D' packets): Postfix keeps them in its
// buffer until its next command that wants a reply (connect and HELO macros
// travel with MAIL and RCPT), but flushes the DATA macros alone when it hands
// the connection to cleanup; Sendmail writes every macro packet on its own.
// Over TCP a lone packet followed by another write would wait for our delayed
// ACK (40 ms and more per message); milter/tcp_tuning.h makes us acknowledge
// on read, so declining saves the reply round trip without that stall
// (measured per flag with tests/bench/capture_milter_session.sh and the
// "pace" rows of tests/integration: Postfix and Sendmail, one session,
// ~2 ms per message, no gap above 1 ms on the milter connection).
//   SMFIP_NOCONNECT, SMFIP_NOHELO  routing needs no client data
//   SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NOBODY  the decision needs no content
//   SMFIP_NOUNKNOWN               nor unknown SMTP commands
//   SMFIP_NODATA                  nor the DATA command (end of message is where
//                                 non-SMTP mail is decided and lines logged)
constexpr unsigned long kUnusedStages = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH |
                                        SMFIP_NOBODY | SMFIP_NOUNKNOWN | SMFIP_NODATA;

// {daemon_name} tells the MTA's listeners apart (decision.non_smtp_daemon_names).
// Postfix sends it among its connect macros by default (libmilter keeps them
// for the connection although we skip that stage), but an operator may have
// trimmed milter_connect_macros, and Sendmail sends it only when asked. So we
// ask for it at MAIL; an MTA that cannot be asked (no SMFIF_SETSYMLIST) sends
// its own list.
// The list replaces the MTA's for that stage, so it keeps the queue id `i`,
// which Sendmail sends at MAIL only (Postfix sends it at end of message too).
constexpr const char* kMailMacros = "i {daemon_name}";

void request_daemon_name(SMFICTX* ctx, unsigned long actions) {
  if ((actions & SMFIF_SETSYMLIST) == 0) return;
  if (smfi_setsymlist(ctx, SMFIM_ENVFROM, const_cast<char*>(kMailMacros)) != MI_SUCCESS)
    spdlog::warn("milter event=macro-request-failed stage=mail macros=\"{}\"", kMailMacros);
}

sfsistat on_negotiate(SMFICTX* ctx, unsigned long offered_actions, unsigned long offered_steps, unsigned long,
                      unsigned long, unsigned long* actions, unsigned long* steps, unsigned long*,
                      unsigned long*) try {
  *steps = offered_steps & kUnusedStages;
  *actions = 0;
  if (over_connection_limit()) return SMFIS_REJECT;
  if (!gate().enter()) return SMFIS_CONTINUE;  // stopping: ask for nothing, answer every stage
  *actions = offered_actions & (SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
  // MAIL is always accepted, so the MTA need not wait for our reply to it:
  // Postfix sends MAIL with the first RCPT in one segment; Sendmail's lone
  // MAIL packet is acknowledged on read (see kUnusedStages).
  *steps = offered_steps & (kUnusedStages | SMFIP_NR_MAIL);
  connection_for(ctx).mail_needs_no_reply = (*steps & SMFIP_NR_MAIL) != 0;
  request_daemon_name(ctx, *actions);
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=negotiate error=\"{}\"", e.what());
  *steps = offered_steps & kUnusedStages;  // without our state, MAIL must be answered
  return SMFIS_CONTINUE;
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
  const Connection* c = connection_of(ctx);
  const sfsistat answered = c && c->mail_needs_no_reply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
  const auto context = gate().enter();
  if (!context) return answered;
  try {
    session_for(ctx, **context)
        .begin_message(SteadyClock::now(), (*context)->settings(), macro(ctx, "{daemon_name}"),
                       argv && argv[0] ? std::optional<std::string_view>(argv[0]) : std::nullopt);
  } catch (const std::exception& e) {
    spdlog::error("milter event=internal-error stage=mail error=\"{}\"", e.what());
    if (answered != SMFIS_NOREPLY) return error_status(**context);
  }
  return answered;
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
  const auto context = gate().enter();
  if (!context) return stopping_rcpt(ctx);
  try {
    if (!argv || !argv[0]) return SMFIS_CONTINUE;
    const RcptReply reply =
        session_for(ctx, **context)
            .on_rcpt(argv[0], macro(ctx, "{rcpt_mailer}"), macro(ctx, "{rcpt_host}"), SteadyClock::now());
    if (reply.accept) return SMFIS_CONTINUE;
    set_reply(ctx, reply.code.c_str(), reply.xcode.c_str(), reply.text);
    return reply.code.starts_with('5') ? SMFIS_REJECT : SMFIS_TEMPFAIL;
  } catch (const std::exception& e) {
    spdlog::error("milter event=internal-error stage=rcpt error=\"{}\"", e.what());
    return error_status(**context);
  }
}

// Stopping: recipients without next-hop macros wait for this stage to be
// decided, so such a message is deferred rather than passed unchecked.
sfsistat stopping_eom(SMFICTX* ctx) {
  const Session* s = session_of(ctx);
  if (s == nullptr || !s->has_undecided_recipients()) return SMFIS_CONTINUE;
  set_reply(ctx, "451", "4.7.5", "MTA-STS: shutting down, try again later");
  return SMFIS_TEMPFAIL;
}

sfsistat on_eom(SMFICTX* ctx) {
  const auto context = gate().enter();
  if (!context) return stopping_eom(ctx);
  try {
    const auto queue_id = macro(ctx, "i").value_or("NOQUEUE");
    const EndOfMessage eom = session_for(ctx, **context).end_message(queue_id, SteadyClock::now());
    if (eom.tempfail) {
      log_lines(eom.log_lines);
      set_reply(ctx, "451", "4.7.5", "MTA-STS: internal error, try again later");
      return SMFIS_TEMPFAIL;
    }
    if (eom.header_value)
      smfi_addheader(ctx, const_cast<char*>("MTA-STS"), const_cast<char*>(eom.header_value->c_str()));
    if (eom.quarantine_reason) smfi_quarantine(ctx, const_cast<char*>(eom.quarantine_reason->c_str()));
    log_lines(eom.log_lines);
    return SMFIS_CONTINUE;
  } catch (const std::exception& e) {
    spdlog::error("milter event=internal-error stage=eom error=\"{}\"", e.what());
    return error_status(**context);
  }
}

sfsistat on_abort(SMFICTX* ctx) try {
  const auto context = gate().enter();
  if (!context) return SMFIS_CONTINUE;
  if (Session* s = session_of(ctx)) log_lines(s->abort_message());
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=abort error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

// Frees the connection's state even when stopping: the session needs no
// context to be destroyed.
sfsistat on_close(SMFICTX* ctx) try {
  std::unique_ptr<Connection> c(connection_of(ctx));
  smfi_setpriv(ctx, nullptr);
  if (c) --g_open_connections;
  const auto context = gate().enter();
  if (context && c && c->session) log_lines(c->session->abort_message());
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=close error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

smfiDesc g_description = {
    const_cast<char*>("mta-sts-milter"),
    SMFI_VERSION,
    SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
    nullptr,  // connect
    nullptr,  // helo
    on_envfrom,
    on_envrcpt,
    nullptr,  // header
    nullptr,  // eoh
    nullptr,  // body
    on_eom,
    on_abort,
    on_close,
    nullptr,  // unknown
    nullptr,  // data
    on_negotiate,
};

}  // namespace

smfiDesc* milter_description() { return &g_description; }

ContextInstalled::ContextInstalled(MilterContext& context) { gate().open(context); }

bool ContextInstalled::close(std::chrono::steady_clock::time_point give_up) { return gate().close(give_up); }

// Reached only when close() succeeded or nothing was ever let in; waits for
// good otherwise, since the context dies with the caller's frame.
ContextInstalled::~ContextInstalled() { gate().close(std::chrono::steady_clock::time_point::max()); }

int callbacks_in_flight() { return gate().inside(); }
int open_milter_connections() { return g_open_connections.load(); }
void set_connection_limit(int limit) { g_connection_limit = limit; }

}  // namespace mtasts::milter
