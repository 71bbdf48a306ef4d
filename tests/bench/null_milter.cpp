// A milter that does nothing, the baseline of run_postfix_bench.sh: what any
// libmilter filter costs the MTA before it decides anything.
//
//   null_milter SOCKET          e.g. null_milter inet:8892@127.0.0.1
//
// It registers every callback of the Sendmail milter API (connect, helo,
// envfrom, envrcpt, header, eoh, body, eom, abort, close, unknown, data), each
// answering SMFIS_CONTINUE, and has no xxfi_negotiate: libmilter then asks the
// MTA for every stage and for a reply to each (no SMFIP_NO* or SMFIP_NR_*
// flags), so the MTA sends and waits for all of them. It keeps no state and
// requests no modification actions. SIGTERM/SIGINT stop it (libmilter's own
// signal thread); exit status 0 after smfi_main returns MI_SUCCESS.
#include <libmilter/mfapi.h>

#include <cstdio>
#include <string>

namespace {

sfsistat on_connect(SMFICTX*, char*, _SOCK_ADDR*) { return SMFIS_CONTINUE; }
sfsistat on_helo(SMFICTX*, char*) { return SMFIS_CONTINUE; }
sfsistat on_envfrom(SMFICTX*, char**) { return SMFIS_CONTINUE; }
sfsistat on_envrcpt(SMFICTX*, char**) { return SMFIS_CONTINUE; }
sfsistat on_header(SMFICTX*, char*, char*) { return SMFIS_CONTINUE; }
sfsistat on_eoh(SMFICTX*) { return SMFIS_CONTINUE; }
sfsistat on_body(SMFICTX*, unsigned char*, size_t) { return SMFIS_CONTINUE; }
sfsistat on_eom(SMFICTX*) { return SMFIS_CONTINUE; }
sfsistat on_abort(SMFICTX*) { return SMFIS_CONTINUE; }
sfsistat on_close(SMFICTX*) { return SMFIS_CONTINUE; }
sfsistat on_unknown(SMFICTX*, const char*) { return SMFIS_CONTINUE; }
sfsistat on_data(SMFICTX*) { return SMFIS_CONTINUE; }

smfiDesc g_description = {
    const_cast<char*>("null-milter"),
    SMFI_VERSION,
    0,  // no modification actions
    on_connect,
    on_helo,
    on_envfrom,
    on_envrcpt,
    on_header,
    on_eoh,
    on_body,
    on_eom,
    on_abort,
    on_close,
    on_unknown,
    on_data,
    nullptr,  // negotiate: libmilter keeps every stage the callbacks above cover
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: null_milter SOCKET   (e.g. inet:8892@127.0.0.1)\n");
    return 2;
  }
  std::string socket = argv[1];
  if (smfi_setconn(socket.data()) == MI_FAILURE || smfi_register(g_description) == MI_FAILURE ||
      smfi_opensocket(true) == MI_FAILURE) {
    std::fprintf(stderr, "null_milter: cannot set up milter socket '%s'\n", socket.c_str());
    return 1;
  }
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
