#include "atrium/http/server_config.h"

namespace atrium::http {

using std::chrono::milliseconds;

void DefineHttpConfig(ConfigSchema& schema) {
  ServerOptions d;
  schema.DefineString("http.host", "127.0.0.1", "Address to listen on (0.0.0.0 for all)",
                      {.non_empty = true});
  schema.DefineInt("http.port", 8080, "TCP port to listen on (0 = any free port)",
                   {.min = 0, .max = 65535});
  schema.DefineInt("http.io_threads", 0, "I/O threads (0 = number of cores)",
                   {.min = 0, .max = 256});
  schema.DefineInt("http.blocking_threads", d.blocking_threads,
                   "Threads for blocking handlers (database, files)", {.min = 1, .max = 256});
  schema.DefineBytes("http.max_header_size", d.max_header_bytes, "Largest request header",
                     {.min = 1024, .max = 1 << 20});
  schema.DefineBytes("http.max_body_size", d.max_body_bytes,
                     "Default largest request body (routes may set their own)",
                     {.min = 0, .max = 1ull << 34});
  schema.DefineInt("http.max_connections", static_cast<int64_t>(d.max_connections),
                   "Concurrent connections; more get 503", {.min = 1, .max = 1000000});
  schema.DefineDuration("http.idle_timeout", d.idle_timeout,
                        "Keep-alive connections idle this long are closed", {.min = 1});
  schema.DefineDuration("http.header_timeout", d.header_timeout,
                        "Time to receive a whole request header (slowloris guard)", {.min = 1});
  schema.DefineDuration("http.body_timeout", d.body_timeout, "Time to receive a request body",
                        {.min = 1});
  schema.DefineDuration("http.write_timeout", d.write_timeout, "Time for each response write",
                        {.min = 1});
  schema.DefineDuration("http.shutdown_grace", d.shutdown_grace,
                        "How long shutdown waits for in-flight requests", {.min = 0});
  schema.DefineBool("http.trust_request_id", d.trust_request_id,
                    "Reuse a well-formed x-request-id from clients");
  schema.DefineStringList("http.cors_origins", {},
                          "Origins allowed to call the APIs from browsers (\"*\" for any)");
}

ServerOptions ServerOptionsFromConfig(const Config& c) {
  ServerOptions o;
  o.host = c.GetString("http.host");
  o.port = static_cast<uint16_t>(c.GetInt("http.port"));
  o.io_threads = static_cast<int>(c.GetInt("http.io_threads"));
  o.blocking_threads = static_cast<int>(c.GetInt("http.blocking_threads"));
  o.max_header_bytes = c.GetBytes("http.max_header_size");
  o.max_body_bytes = c.GetBytes("http.max_body_size");
  o.max_connections = static_cast<size_t>(c.GetInt("http.max_connections"));
  o.idle_timeout = c.GetDuration("http.idle_timeout");
  o.header_timeout = c.GetDuration("http.header_timeout");
  o.body_timeout = c.GetDuration("http.body_timeout");
  o.write_timeout = c.GetDuration("http.write_timeout");
  o.shutdown_grace = c.GetDuration("http.shutdown_grace");
  o.trust_request_id = c.GetBool("http.trust_request_id");
  return o;
}

CorsOptions CorsOptionsFromConfig(const Config& c) {
  CorsOptions o;
  o.allowed_origins = c.GetStringList("http.cors_origins");
  return o;
}

}  // namespace atrium::http
