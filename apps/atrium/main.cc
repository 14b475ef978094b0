// atrium: the composition root and command line. The only place that wires concrete parts.
//
//   atrium serve [--config F] [--services a,b] [--port N] [--host H] [--data-dir D] [--set k=v]
//   atrium config show [same flags]
//   atrium migrate status|up [same flags]
//   atrium --version
#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/version.h"
#include "server_main.h"

namespace atrium::app {
namespace {

struct CommonFlags {
  std::string config_path;
  std::vector<std::string> services;
  std::optional<int> port;
  std::string host;
  std::string data_dir;
  std::vector<std::string> sets;
};

void AddCommonFlags(CLI::App* cmd, CommonFlags& f) {
  cmd->add_option("--config", f.config_path, "TOML configuration file (default ./atrium.toml)");
  cmd->add_option("--services", f.services, "Services to run (bus,embed,relay,track,chat)")
      ->delimiter(',');
  cmd->add_option("--port", f.port, "HTTP port (0 = any free port)");
  cmd->add_option("--host", f.host, "HTTP listen address");
  cmd->add_option("--data-dir", f.data_dir, "Data directory");
  cmd->add_option("--set", f.sets, "Any configuration key: --set http.max_body_size=8MiB");
}

LoadOptions ToLoadOptions(const CommonFlags& f) {
  LoadOptions o;
  if (!f.config_path.empty()) o.toml_path = f.config_path;
  std::string services;
  for (const auto& s : f.services) services += (services.empty() ? "" : ",") + s;
  if (!f.services.empty()) o.cli_overrides.emplace_back("services=" + services, "--services");
  if (f.port) o.cli_overrides.emplace_back("http.port=" + std::to_string(*f.port), "--port");
  if (!f.host.empty()) o.cli_overrides.emplace_back("http.host=" + f.host, "--host");
  if (!f.data_dir.empty()) o.cli_overrides.emplace_back("data_dir=" + f.data_dir, "--data-dir");
  for (const auto& s : f.sets) o.cli_overrides.emplace_back(s, "--set");
  return o;
}

Result<Config> LoadConfig(const CommonFlags& flags) {
  ConfigSchema schema = BuildSchema();
  auto config = Config::Load(schema, ToLoadOptions(flags));
  if (config.ok()) {
    for (const auto& w : config->warnings())
      std::fprintf(stderr, "atrium: warning: %s\n", w.c_str());
  }
  return config;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "atrium: %s\n",
               s.message().empty() ? s.ToString().c_str() : s.message().c_str());
  return 1;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"Atrium: self-hosted AI infrastructure for a team (bus, embed, relay, track, chat)"};
  app.set_version_flag("--version", std::string("atrium ") + kVersion + " (" + kGitRevision + ", " +
                                        kBuildType + ")");
  app.require_subcommand(1);

  CommonFlags serve_flags, config_flags, migrate_flags;
  auto* serve = app.add_subcommand("serve", "Start the server");
  AddCommonFlags(serve, serve_flags);

  auto* config_cmd = app.add_subcommand("config", "Inspect the configuration");
  config_cmd->require_subcommand(1);
  auto* show = config_cmd->add_subcommand("show", "Print the effective configuration with sources");
  AddCommonFlags(show, config_flags);

  auto* migrate = app.add_subcommand("migrate", "Database migrations");
  migrate->require_subcommand(1);
  auto* migrate_status = migrate->add_subcommand("status", "List applied and pending migrations");
  auto* migrate_up = migrate->add_subcommand("up", "Apply pending migrations");
  AddCommonFlags(migrate_status, migrate_flags);
  AddCommonFlags(migrate_up, migrate_flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*serve) {
    auto config = LoadConfig(serve_flags);
    if (!config.ok()) return Fail(config.status());
    return Serve(std::make_shared<const Config>(std::move(*config)));
  }
  if (*show) {
    auto config = LoadConfig(config_flags);
    if (!config.ok()) return Fail(config.status());
    std::cout << config->Show();
    return 0;
  }
  if (*migrate_status || *migrate_up) {
    auto config = LoadConfig(migrate_flags);
    if (!config.ok()) return Fail(config.status());
    return Migrate(*config, migrate_up->parsed());
  }
  return 0;
}

}  // namespace atrium::app

int main(int argc, char** argv) { return atrium::app::Main(argc, argv); }
