// The version of this build, from project() in the top CMakeLists.txt: the
// one place it is written (--version, the start-up log line, the man pages,
// the Debian package).
#pragma once

namespace mtasts::milter {

extern const char* const kVersion;  // "0.1.0"

}  // namespace mtasts::milter
