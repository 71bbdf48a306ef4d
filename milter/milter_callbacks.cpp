#include "milter/milter_callbacks.h"

#include <libmilter/mfapi.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>

namespace mtasts::milter {
namespace {

// Null before the daemon installs its context and after it is gone: a
// callback of a connection libmilter still serves then does nothing.
std::atomic<MilterContext*> g_context = nullptr;

// Callbacks check g_context first; past that check it stays installed while
// they run (the daemon waits, bounded, for running callbacks before removing it).
MilterContext& context() { return *g_context.load(); }

std::optional<std::string_view> macro(SMFICTX* ctx, const char* name) {
  const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
  if (!value) return std::nullopt;
  return std::string_view(value);
}

// Counts a callback as running for as long as it is in scope.
class InFlight {
 public:
  InFlight() { ++context().callbacks_in_flight; }
  ~InFlight() { --context().callbacks_in_flight; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

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
  ++context().open_sessions;
  return *c;
}

Session* session_of(SMFICTX* ctx) {
  Connection* c = connection_of(ctx);
  return c ? c->session.get() : nullptr;
}

Session& session_for(SMFICTX* ctx) {
  Connection& c = connection_for(ctx);
  if (!c.session) {
    const Settings settings = context().settings();
    c.session = std::make_unique<Session>(context().check(), settings.config, settings.overrides);
  }
  return *c.session;
}

sfsistat error_status() {
  const auto config = context().config();
  return config->decision.error_action == Action::Tempfail ? SMFIS_TEMPFAIL : SMFIS_CONTINUE;
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
  if (!g_context) return SMFIS_CONTINUE;  // shutting down: ask for nothing, answer every stage
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

sfsistat on_envfrom(SMFICTX* ctx, char**) {
  if (!g_context) return SMFIS_CONTINUE;
  const InFlight running;
  const Connection* c = connection_of(ctx);
  const bool no_reply = c && c->mail_needs_no_reply;
  try {
    session_for(ctx).begin_message(SteadyClock::now(), context().settings(), macro(ctx, "{daemon_name}"));
  } catch (const std::exception& e) {
    spdlog::error("milter event=internal-error stage=mail error=\"{}\"", e.what());
    if (!no_reply) return error_status();
  }
  return no_reply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) try {
  if (!g_context) return SMFIS_CONTINUE;
  const InFlight running;
  if (!argv || !argv[0]) return SMFIS_CONTINUE;
  const RcptReply reply =
      session_for(ctx).on_rcpt(argv[0], macro(ctx, "{rcpt_mailer}"), macro(ctx, "{rcpt_host}"), SteadyClock::now());
  if (reply.accept) return SMFIS_CONTINUE;
  const std::string text = reply_safe(reply.text);
  smfi_setreply(ctx, const_cast<char*>(reply.code.c_str()), const_cast<char*>(reply.xcode.c_str()),
                const_cast<char*>(text.c_str()));
  return reply.code.starts_with('5') ? SMFIS_REJECT : SMFIS_TEMPFAIL;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=rcpt error=\"{}\"", e.what());
  return error_status();
}

sfsistat on_eom(SMFICTX* ctx) try {
  if (!g_context) return SMFIS_CONTINUE;
  const InFlight running;
  const auto queue_id = macro(ctx, "i").value_or("NOQUEUE");
  const EndOfMessage eom = session_for(ctx).end_message(queue_id, SteadyClock::now());
  if (eom.tempfail) {
    log_lines(eom.log_lines);
    smfi_setreply(ctx, const_cast<char*>("451"), const_cast<char*>("4.7.5"),
                  const_cast<char*>("MTA-STS: internal error, try again later"));
    return SMFIS_TEMPFAIL;
  }
  if (eom.header_value) smfi_addheader(ctx, const_cast<char*>("MTA-STS"), const_cast<char*>(eom.header_value->c_str()));
  if (eom.quarantine_reason) smfi_quarantine(ctx, const_cast<char*>(eom.quarantine_reason->c_str()));
  log_lines(eom.log_lines);
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=eom error=\"{}\"", e.what());
  return error_status();
}

sfsistat on_abort(SMFICTX* ctx) try {
  if (!g_context) return SMFIS_CONTINUE;
  const InFlight running;
  if (Session* s = session_of(ctx)) log_lines(s->abort_message());
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=abort error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) try {
  std::unique_ptr<Connection> c(connection_of(ctx));
  smfi_setpriv(ctx, nullptr);
  if (!g_context) return SMFIS_CONTINUE;
  const InFlight running;
  if (c) {
    if (c->session) log_lines(c->session->abort_message());
    --context().open_sessions;
  }
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=close error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

smfiDesc g_description = {
    const_cast<char*>("mta-sts-milter"),
    SMFI_VERSION,
    SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
    nullptr,      // connect
    nullptr,      // helo
    on_envfrom,
    on_envrcpt,
    nullptr,      // header
    nullptr,      // eoh
    nullptr,      // body
    on_eom,
    on_abort,
    on_close,
    nullptr,      // unknown
    nullptr,      // data
    on_negotiate,
};

}  // namespace

smfiDesc* milter_description() { return &g_description; }

ContextInstalled::ContextInstalled(MilterContext& context) { g_context = &context; }
ContextInstalled::~ContextInstalled() { g_context = nullptr; }

}  // namespace mtasts::milter
