// The parts of the atrium binary behind the command line: the configuration schema of every
// module, `serve` and `migrate`.
#pragma once

#include <memory>

#include "atrium/core/config.h"

namespace atrium::app {

// The five services `--services` may name.
inline constexpr const char* kServiceNames[] = {"bus", "embed", "relay", "track", "chat"};

// Every configuration key of the binary.
ConfigSchema BuildSchema();
// Runs the server until SIGINT/SIGTERM. Returns the process exit code.
int Serve(std::shared_ptr<const Config> config);
// `migrate status` (apply = false) or `migrate up`. Returns the process exit code.
int Migrate(const Config& config, bool apply);

}  // namespace atrium::app
