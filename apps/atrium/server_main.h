// The parts of the atrium binary behind the command line: the configuration schema of every
// module, `serve` and `migrate`.
#pragma once

#include <memory>
#include <string>

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
// `admin create-user`: a user with its own workspace (a platform admin when `admin`).
int AdminCreateUser(const Config& config, const std::string& email, const std::string& password,
                    const std::string& name, bool admin);
// `admin rotate-master-key`: re-seals stored secrets under the first key of auth.master_key.
int AdminRotateMasterKey(const Config& config);

}  // namespace atrium::app
