// mta-sts-milter: one binary for the daemon and the operator commands.
#include "milter/cli.h"

int main(int argc, char** argv) { return mtasts::milter::run_cli(argc, argv); }
