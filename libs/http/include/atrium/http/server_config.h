// The `http.*` configuration keys and their mapping onto ServerOptions and CorsOptions.
#pragma once

#include "atrium/core/config.h"
#include "atrium/http/cors.h"
#include "atrium/http/server.h"

namespace atrium::http {

// Declares http.host, http.port, limits, timeouts and CORS keys with their defaults.
void DefineHttpConfig(ConfigSchema& schema);
ServerOptions ServerOptionsFromConfig(const Config& config);
CorsOptions CorsOptionsFromConfig(const Config& config);

}  // namespace atrium::http
