// Names for the threads Atrium starts, so that `top -H`, `ps -L`, perf and debuggers tell the
// HTTP I/O threads from the WAL writer or the usage aggregator.
#pragma once

#include <string>
#include <string_view>

namespace atrium {

// Names the calling thread. Linux keeps 15 bytes: longer names are cut. Best effort: a platform
// without thread names ignores it.
void SetThreadName(std::string_view name);

// The calling thread's name ("" where the platform has none).
std::string ThreadName();

}  // namespace atrium
