#include "milter/version.h"

namespace mtasts::milter {

const char* const kVersion = MTASTS_VERSION;

}  // namespace mtasts::milter
