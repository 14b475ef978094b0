// atrium: the composition root and command line. The only place that wires concrete parts.
//
//   atrium serve [--config F] [--services a,b] [--port N] [--host H] [--data-dir D] [--set k=v]
//   atrium config show [same flags]
//   atrium migrate status|up [same flags]
//   atrium admin create-user --email E --password P [--name N] [--admin] [same flags]
//   atrium admin rotate-master-key [same flags]
//   atrium bus tail TOPIC [--from earliest|latest|N] [--url http://host:port] [--key atr_...]
//   atrium bus bench [--messages N] [--payload BYTES] [--publishers P] [--durability memory|sync]
//   atrium embed --model DIR_OR_ID [--model ...] [--port N] [same flags]
//   atrium --version
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string_view>

#include <CLI/CLI.hpp>

#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/version.h"
#include "bus_cli.h"
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

// The process environment, with ATRIUM_MASTER_KEY (the documented name of the master key ring)
// standing for ATRIUM_AUTH__MASTER_KEY (auth.master_key) when that is not set itself.
std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view item(*e);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  if (auto it = env.find("ATRIUM_MASTER_KEY"); it != env.end()) {
    env.emplace("ATRIUM_AUTH__MASTER_KEY", it->second);
    env.erase("ATRIUM_MASTER_KEY");
  }
  return env;
}

LoadOptions ToLoadOptions(const CommonFlags& f) {
  LoadOptions o;
  o.env = ProcessEnvironment();
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

  CommonFlags serve_flags, config_flags, migrate_flags, admin_flags, embed_flags;
  auto* serve = app.add_subcommand("serve", "Start the server");
  AddCommonFlags(serve, serve_flags);

  // Only the embedding APIs, without credentials: a local tool, like TEI's router.
  auto* embed_cmd = app.add_subcommand("embed", "Serve embeddings only (public, no sign-in)");
  std::vector<std::string> embed_models;
  embed_cmd
      ->add_option("--model", embed_models,
                   "Model directory or Hugging Face id, optionally name=...; repeatable")
      ->required();
  AddCommonFlags(embed_cmd, embed_flags);

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

  auto* admin = app.add_subcommand("admin", "Administration: users and secrets");
  admin->require_subcommand(1);
  auto* create_user = admin->add_subcommand("create-user", "Create a user with its own workspace");
  std::string user_email, user_password, user_name;
  bool user_admin = false;
  create_user->add_option("--email", user_email, "Email address")->required();
  create_user->add_option("--password", user_password, "Password (at least 8 characters)")
      ->required();
  create_user->add_option("--name", user_name, "Display name (default: the email's local part)");
  create_user->add_flag("--admin", user_admin, "Make the user a platform admin");
  AddCommonFlags(create_user, admin_flags);
  auto* rotate = admin->add_subcommand(
      "rotate-master-key", "Re-encrypt stored secrets under the first key of auth.master_key");
  AddCommonFlags(rotate, admin_flags);

  auto* bus_cmd = app.add_subcommand("bus", "The message bus: tail a topic, benchmark");
  bus_cmd->require_subcommand(1);
  auto* tail = bus_cmd->add_subcommand("tail", "Print a topic's records as they arrive (HTTP SSE)");
  BusTailOptions tail_options;
  tail->add_option("topic", tail_options.topic, "Topic name")->required();
  tail->add_option("--from", tail_options.from, "earliest, latest or an offset (default latest)");
  tail->add_option("--url", tail_options.url, "Server URL (default http://127.0.0.1:8080)");
  tail->add_option("--key", tail_options.key, "API key with the bus:subscribe scope");
  auto* bench = bus_cmd->add_subcommand("bench", "Publish throughput and latency, in-process");
  BusBenchOptions bench_options;
  bench->add_option("--messages", bench_options.messages, "Messages in total (default 1000000)");
  bench->add_option("--payload", bench_options.payload_bytes, "Payload bytes (default 128)");
  bench->add_option("--publishers", bench_options.publishers, "Publisher threads (default 16)");
  bench->add_option("--durability", bench_options.durability, "memory or sync (default sync)");
  bench->add_option("--in-flight", bench_options.in_flight,
                    "Publishes each publisher keeps outstanding (default 1000)");
  bench->add_option("--batch", bench_options.batch, "Messages per publish call (default 1)");
  bench->add_option("--subscribers", bench_options.subscribers,
                    "Subscribers that must each receive every record (default 0)");
  bench->add_option("--ring-pow", bench_options.ring_pow,
                    "The topic's ring holds 2^N records (default 16, as topics do)");

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
  if (*embed_cmd) {
    std::string models;
    for (const auto& m : embed_models) models += (models.empty() ? "" : ",") + m;
    CommonFlags flags = embed_flags;
    flags.services = {"embed"};
    // Ahead of the user's --set so that those still win.
    flags.sets.insert(flags.sets.begin(), {"embed.public=true", "embed.models=" + models});
    auto config = LoadConfig(flags);
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
  if (*create_user || *rotate) {
    auto config = LoadConfig(admin_flags);
    if (!config.ok()) return Fail(config.status());
    if (*create_user) {
      return AdminCreateUser(*config, user_email, user_password, user_name, user_admin);
    }
    return AdminRotateMasterKey(*config);
  }
  if (*tail) return BusTail(tail_options);
  if (*bench) return BusBench(bench_options);
  return 0;
}

}  // namespace atrium::app

int main(int argc, char** argv) { return atrium::app::Main(argc, argv); }
