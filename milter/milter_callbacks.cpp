#include "milter/milter_callbacks.h"

#include <libmilter/mfapi.h>
#include <spdlog/spdlog.h>

#include <optional>

namespace mtasts::milter {
namespace {

MilterContext* g_context = nullptr;

std::optional<std::string_view> macro(SMFICTX* ctx, const char* name) {
  const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
  if (!value) return std::nullopt;
  return std::string_view(value);
}

// Counts a callback as running for as long as it is in scope.
class InFlight {
 public:
  InFlight() { ++g_context->callbacks_in_flight; }
  ~InFlight() { --g_context->callbacks_in_flight; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

Session* session_of(SMFICTX* ctx) { return static_cast<Session*>(smfi_getpriv(ctx)); }

Session& session_for(SMFICTX* ctx) {
  if (Session* s = session_of(ctx)) return *s;
  const Settings settings = g_context->settings();
  auto* s = new Session(g_context->check(), settings.config, settings.overrides);  // owned by libmilter's priv until close
  smfi_setpriv(ctx, s);
  ++g_context->open_sessions;
  return *s;
}

sfsistat error_status() {
  const auto config = g_context->config();
  return config->decision.error_action == "tempfail" ? SMFIS_TEMPFAIL : SMFIS_CONTINUE;
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

sfsistat on_negotiate(SMFICTX*, unsigned long offered_actions, unsigned long offered_steps, unsigned long,
                      unsigned long, unsigned long* actions, unsigned long* steps, unsigned long*, unsigned long*) {
  *actions = offered_actions & (SMFIF_ADDHDRS | SMFIF_QUARANTINE);
  // Decline every stage we do not use, so the MTA neither sends nor waits.
  const unsigned long wanted = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY |
                               SMFIP_NOUNKNOWN | SMFIP_NODATA;
  *steps = offered_steps & wanted;
  return SMFIS_CONTINUE;
}

sfsistat on_envfrom(SMFICTX* ctx, char**) try {
  const InFlight running;
  session_for(ctx).begin_message(SteadyClock::now(), g_context->settings());
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=mail error=\"{}\"", e.what());
  return error_status();
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) try {
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
  const InFlight running;
  const auto queue_id = macro(ctx, "i").value_or("NOQUEUE");
  const EndOfMessage eom = session_for(ctx).end_message(queue_id, SteadyClock::now());
  if (eom.header_value) smfi_addheader(ctx, const_cast<char*>("MTA-STS"), const_cast<char*>(eom.header_value->c_str()));
  if (eom.quarantine_reason) smfi_quarantine(ctx, const_cast<char*>(eom.quarantine_reason->c_str()));
  log_lines(eom.log_lines);
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=eom error=\"{}\"", e.what());
  return error_status();
}

sfsistat on_abort(SMFICTX* ctx) try {
  const InFlight running;
  if (Session* s = session_of(ctx)) log_lines(s->abort_message());
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=abort error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) try {
  const InFlight running;
  std::unique_ptr<Session> s(session_of(ctx));
  smfi_setpriv(ctx, nullptr);
  if (s) {
    log_lines(s->abort_message());
    --g_context->open_sessions;
  }
  return SMFIS_CONTINUE;
} catch (const std::exception& e) {
  spdlog::error("milter event=internal-error stage=close error=\"{}\"", e.what());
  return SMFIS_CONTINUE;
}

smfiDesc g_description = {
    const_cast<char*>("mta-sts-milter"),
    SMFI_VERSION,
    SMFIF_ADDHDRS | SMFIF_QUARANTINE,
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

smfiDesc* milter_description(MilterContext& context) {
  g_context = &context;
  return &g_description;
}

}  // namespace mtasts::milter
