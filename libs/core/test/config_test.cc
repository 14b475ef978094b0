#include "atrium/core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "atrium/core/env.h"
#include "atrium/core/testing.h"

namespace atrium {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

ConfigSchema TestSchema() {
  ConfigSchema schema;
  schema.DefineInt("http.port", 8080, "Port to listen on.", {.min = 0, .max = 65535})
      .DefineString("http.host", "127.0.0.1", "Address to bind.", {.non_empty = true})
      .DefineBytes("http.max_body_size", 2 << 20, "Request body limit.")
      .DefineDuration("http.idle_timeout", milliseconds(60'000), "Keep-alive idle timeout.",
                      {.min = 1, .max = 3'600'000})
      .DefineStringList("http.cors_origins", {}, "Allowed CORS origins.")
      .DefineBool("metrics.enabled", true, "Serve /metrics.")
      .DefineDouble("sampling.ratio", 0.5, "Trace sampling ratio.", {.min = 0, .max = 1})
      .DefineString("data_dir", "./atrium-data", "Data directory.")
      .DefineString("store.driver", "sqlite", "Database driver.",
                    {.one_of = {"sqlite", "postgres"}})
      .DefineSecret("store.password", "", "Database password.")
      .DefineSecret("relay.api_key", "sk-default", "Upstream API key.");
  return schema;
}

// Options that see no process environment and no ./atrium.toml.
LoadOptions Hermetic() {
  LoadOptions o;
  o.env = std::map<std::string, std::string>{};
  o.default_toml_path = "";
  return o;
}

std::string WriteToml(const testing::TempDir& dir, std::string_view content) {
  std::string path = JoinPath(dir.path(), "atrium.toml");
  EXPECT_TRUE(WriteFileAtomic(Env::Default(), path, content).ok());
  return path;
}

TEST(ConfigTest, DefaultsApplyWhenNothingIsSet) {
  auto config = Config::Load(TestSchema(), Hermetic());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->GetInt("http.port"), 8080);
  EXPECT_EQ(config->GetString("http.host"), "127.0.0.1");
  EXPECT_EQ(config->GetBytes("http.max_body_size"), 2u << 20);
  EXPECT_EQ(config->GetDuration("http.idle_timeout"), milliseconds(60'000));
  EXPECT_TRUE(config->GetStringList("http.cors_origins").empty());
  EXPECT_TRUE(config->GetBool("metrics.enabled"));
  EXPECT_DOUBLE_EQ(config->GetDouble("sampling.ratio"), 0.5);
  EXPECT_EQ(config->SourceOf("http.port").source, ConfigSource::kDefault);
  EXPECT_TRUE(config->warnings().empty());
}

TEST(ConfigTest, TomlNestedTablesFlattenToDottedKeys) {
  testing::TempDir dir;
  std::string path = WriteToml(dir, R"(
data_dir = "/var/lib/atrium"
[http]
port = 9000
max_body_size = "4MiB"
idle_timeout = "90s"
cors_origins = ["https://a.example", "https://b.example"]
[sampling]
ratio = 1
)");
  LoadOptions o = Hermetic();
  o.toml_path = path;
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->GetInt("http.port"), 9000);
  EXPECT_EQ(config->GetBytes("http.max_body_size"), 4u << 20);
  EXPECT_EQ(config->GetDuration("http.idle_timeout"), milliseconds(90'000));
  EXPECT_EQ(config->GetStringList("http.cors_origins"),
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(config->GetString("data_dir"), "/var/lib/atrium");
  EXPECT_DOUBLE_EQ(config->GetDouble("sampling.ratio"), 1.0);
  EXPECT_EQ(config->SourceOf("http.port").source, ConfigSource::kFile);
  EXPECT_EQ(config->SourceOf("http.port").detail, path);
}

TEST(ConfigTest, DottedKeysInTomlAreAccepted) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path = WriteToml(dir, "http.port = 1234\n");
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->GetInt("http.port"), 1234);
}

TEST(ConfigTest, LayersApplyInOrderDefaultFileEnvCli) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path =
      WriteToml(dir, "[http]\nport = 1000\nhost = \"0.0.0.0\"\n[store]\ndriver = \"postgres\"\n");
  o.env = std::map<std::string, std::string>{{"ATRIUM_HTTP__PORT", "2000"},
                                             {"ATRIUM_HTTP__HOST", "::1"}};
  o.cli_overrides = {CliOverride("http.port=3000", "--port")};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->GetInt("http.port"), 3000);
  EXPECT_EQ(config->SourceOf("http.port").source, ConfigSource::kCli);
  EXPECT_EQ(config->SourceOf("http.port").detail, "--port");
  EXPECT_EQ(config->GetString("http.host"), "::1");
  EXPECT_EQ(config->SourceOf("http.host").source, ConfigSource::kEnv);
  EXPECT_EQ(config->SourceOf("http.host").detail, "ATRIUM_HTTP__HOST");
  EXPECT_EQ(config->GetString("store.driver"), "postgres");
  EXPECT_EQ(config->SourceOf("store.driver").source, ConfigSource::kFile);
  EXPECT_EQ(config->SourceOf("data_dir").source, ConfigSource::kDefault);
}

TEST(ConfigTest, EnvNamesMapDoubleUnderscoreToDotAndKeepSingleUnderscore) {
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{
      {"ATRIUM_DATA_DIR", "/data"},
      {"ATRIUM_HTTP__MAX_BODY_SIZE", "64KiB"},
      {"ATRIUM_HTTP__IDLE_TIMEOUT", "250ms"},
      {"ATRIUM_HTTP__CORS_ORIGINS", "https://a, https://b ,"},
      {"ATRIUM_METRICS__ENABLED", "no"},
      {"PATH", "/usr/bin"},
  };
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->GetString("data_dir"), "/data");
  EXPECT_EQ(config->GetBytes("http.max_body_size"), 64u * 1024);
  EXPECT_EQ(config->GetDuration("http.idle_timeout"), milliseconds(250));
  EXPECT_EQ(config->GetStringList("http.cors_origins"),
            (std::vector<std::string>{"https://a", "https://b"}));
  EXPECT_FALSE(config->GetBool("metrics.enabled"));
}

TEST(ConfigTest, BoolsFromTextAcceptCommonSpellings) {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, bool>>{{"true", true},
                                                                                {"1", true},
                                                                                {"yes", true},
                                                                                {"TRUE", true},
                                                                                {"false", false},
                                                                                {"0", false},
                                                                                {"no", false},
                                                                                {"off", false}}) {
    LoadOptions o = Hermetic();
    o.env = std::map<std::string, std::string>{{"ATRIUM_METRICS__ENABLED", text}};
    auto config = Config::Load(TestSchema(), o);
    ASSERT_TRUE(config.ok()) << text;
    EXPECT_EQ(config->GetBool("metrics.enabled"), expected) << text;
  }
}

TEST(ConfigTest, UnknownEnvVariableIsAWarningAndReservedOnesAreSilent) {
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{{"ATRIUM_HTTP__PROT", "1"},
                                             {"ATRIUM_TEST_TMPDIR", "/tmp/x"},
                                             {"ATRIUM_SOURCE_DIR", "/src"},
                                             {"ATRIUM_BINARY_DIR", "/build"}};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->warnings().size(), 1u);
  EXPECT_EQ(config->warnings()[0],
            "ignoring environment variable ATRIUM_HTTP__PROT: no config key http.prot (did you "
            "mean http.port?)");
}

TEST(ConfigTest, UnknownTomlKeyIsAnErrorWithLocationAndSuggestion) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path = WriteToml(dir, "[http]\nprot = 9000\n");
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "unknown config key http.prot in " + *o.toml_path + ":2:1 (did you mean http.port?)");
}

TEST(ConfigTest, UnknownCliKeyIsAnError) {
  LoadOptions o = Hermetic();
  o.cli_overrides = {"nope=1"};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), "unknown config key nope from command line --set");
}

TEST(ConfigTest, CliOverrideWithoutEqualsIsAnError) {
  LoadOptions o = Hermetic();
  o.cli_overrides = {"http.port"};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("expected key=value"));
}

TEST(ConfigTest, OutOfRangeEnvValueNamesKeyValueSourceAndRange) {
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{{"ATRIUM_HTTP__PORT", "99999"}};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid value for http.port from env ATRIUM_HTTP__PORT: \"99999\" (must be an integer "
            "between 0 and 65535)");
}

TEST(ConfigTest, NonNumericCliValueIsRejected) {
  LoadOptions o = Hermetic();
  o.cli_overrides = {CliOverride("http.port=eighty", "--port")};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid value for http.port from command line --port: \"eighty\" (must be an integer "
            "between 0 and 65535)");
}

TEST(ConfigTest, WrongTomlTypeNamesFileLineAndColumn) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path = WriteToml(dir, "[http]\nport = \"9000\"\n");
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid value for http.port from file " + *o.toml_path +
                ":2:8: \"9000\" (must be an integer between 0 and 65535)");
}

TEST(ConfigTest, TomlSyntaxErrorNamesFileLineAndColumn) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path = WriteToml(dir, "[http]\nport = = 1\n");
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(*o.toml_path + ":2:"));
  EXPECT_THAT(config.status().message(), HasSubstr("TOML syntax error"));
}

TEST(ConfigTest, ExplicitTomlPathMustExist) {
  LoadOptions o = Hermetic();
  o.toml_path = "/nonexistent/atrium.toml";
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("cannot read config file /nonexistent"));
}

TEST(ConfigTest, DefaultTomlPathIsReadOnlyWhenPresent) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.default_toml_path = JoinPath(dir.path(), "missing.toml");
  ASSERT_TRUE(Config::Load(TestSchema(), o).ok());
  o.default_toml_path = WriteToml(dir, "data_dir = \"/x\"\n");
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->GetString("data_dir"), "/x");
}

TEST(ConfigTest, OneOfNonEmptyAndRangeConstraintsAreEnforced) {
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{{"ATRIUM_STORE__DRIVER", "mysql"},
                                             {"ATRIUM_HTTP__HOST", ""},
                                             {"ATRIUM_HTTP__IDLE_TIMEOUT", "2h"},
                                             {"ATRIUM_SAMPLING__RATIO", "1.5"}};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_FALSE(config.ok());
  // All errors are reported at once, one per line, in key order of the environment map.
  EXPECT_EQ(config.status().message(),
            "invalid value for http.host from env ATRIUM_HTTP__HOST: \"\" (must be a non-empty "
            "string)\n"
            "invalid value for http.idle_timeout from env ATRIUM_HTTP__IDLE_TIMEOUT: \"2h\" (must "
            "be a duration such as 250ms, 10s, 5m, 1h or an integer number of milliseconds "
            "between 1ms and 1h)\n"
            "invalid value for sampling.ratio from env ATRIUM_SAMPLING__RATIO: \"1.5\" (must be a "
            "number between 0 and 1)\n"
            "invalid value for store.driver from env ATRIUM_STORE__DRIVER: \"mysql\" (must be one "
            "of: sqlite, postgres)");
}

TEST(ConfigTest, CustomValidatorMessageIsEmbedded) {
  ConfigSchema schema;
  schema.DefineString("store.url", "sqlite://x", "Database URL.",
                      {.validator = [](const ConfigValue& v) {
                        return std::get<std::string>(v).starts_with("sqlite://") ||
                                       std::get<std::string>(v).starts_with("postgres://")
                                   ? Status::Ok()
                                   : InvalidArgument("must start with sqlite:// or postgres://");
                      }});
  LoadOptions o = Hermetic();
  o.cli_overrides = {"store.url=mysql://db"};
  auto config = Config::Load(schema, o);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "invalid value for store.url from command line --set: \"mysql://db\" (must start with "
            "sqlite:// or postgres://)");
}

TEST(ConfigTest, SecretValuesAreNotEchoedInErrors) {
  ConfigSchema schema;
  schema.DefineSecret("relay.api_key", "", "Key.", {.validator = [](const ConfigValue& v) {
                        return std::get<std::string>(v).empty() ||
                                       std::get<std::string>(v).starts_with("sk-")
                                   ? Status::Ok()
                                   : InvalidArgument("must start with sk-");
                      }});
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{{"ATRIUM_RELAY__API_KEY", "hunter2"}};
  auto config = Config::Load(schema, o);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT(config.status().message(), HasSubstr("\"***\""));
}

TEST(ConfigTest, ShowListsEveryKeySortedWithSourceAndRedactsSecrets) {
  testing::TempDir dir;
  LoadOptions o = Hermetic();
  o.toml_path = WriteToml(dir, "[store]\npassword = \"pw\"\n");
  o.env = std::map<std::string, std::string>{{"ATRIUM_HTTP__PORT", "9000"},
                                             {"ATRIUM_HTTP__CORS_ORIGINS", "a,b"}};
  o.cli_overrides = {CliOverride("data_dir=/tmp/\"q\"", "--data-dir")};
  auto config = Config::Load(TestSchema(), o);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->Show(),
            "data_dir = \"/tmp/\\\"q\\\"\"  # cli --data-dir\n"
            "http.cors_origins = [\"a\", \"b\"]  # env ATRIUM_HTTP__CORS_ORIGINS\n"
            "http.host = \"127.0.0.1\"  # default\n"
            "http.idle_timeout = \"1m\"  # default\n"
            "http.max_body_size = \"2MiB\"  # default\n"
            "http.port = 9000  # env ATRIUM_HTTP__PORT\n"
            "metrics.enabled = true  # default\n"
            "relay.api_key = \"***\"  # default\n"
            "sampling.ratio = 0.5  # default\n"
            "store.driver = \"sqlite\"  # default\n"
            "store.password = \"***\"  # file " +
                *o.toml_path + "\n");
}

TEST(ConfigTest, ShowShowsEmptySecretAsEmptyString) {
  auto config = Config::Load(TestSchema(), Hermetic());
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(config->Show(), HasSubstr("store.password = \"\"  # default\n"));
}

TEST(ConfigTest, ShowOutputLoadsBackAsTheSameConfig) {
  LoadOptions o = Hermetic();
  o.env = std::map<std::string, std::string>{{"ATRIUM_HTTP__PORT", "9000"},
                                             {"ATRIUM_HTTP__IDLE_TIMEOUT", "1500"},
                                             {"ATRIUM_HTTP__MAX_BODY_SIZE", "1000"},
                                             {"ATRIUM_SAMPLING__RATIO", "1"},
                                             {"ATRIUM_DATA_DIR", "a\\b\n\tc"}};
  auto first = Config::Load(TestSchema(), o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  testing::TempDir dir;
  LoadOptions again = Hermetic();
  again.toml_path = WriteToml(dir, first->Show());
  auto second = Config::Load(TestSchema(), again);
  ASSERT_TRUE(second.ok()) << second.status().ToString() << "\n" << first->Show();
  ConfigSchema schema = TestSchema();
  for (const auto& [name, key] : schema.keys()) {
    if (key.secret) continue;
    EXPECT_EQ(first->Get(name), second->Get(name)) << name;
  }
}

TEST(ConfigParseTest, Durations) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("10s"), milliseconds(10'000));
  EXPECT_EQ(*ParseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*ParseDuration("1h30m"), milliseconds(5'400'000));
  EXPECT_EQ(*ParseDuration("1500"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
  for (const char* bad : {"", "s", "-5s", "10x", "1.5s", "10 s", "ms10", "5m1"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatDuration(milliseconds(90'000)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0ms");
  EXPECT_EQ(FormatDuration(milliseconds(7'200'000)), "2h");
}

TEST(ConfigParseTest, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("512"), 512u);
  EXPECT_EQ(*ParseByteSize("512B"), 512u);
  EXPECT_EQ(*ParseByteSize("64KiB"), 65536u);
  EXPECT_EQ(*ParseByteSize("2MiB"), 2u << 20);
  EXPECT_EQ(*ParseByteSize("1GiB"), 1u << 30);
  EXPECT_EQ(*ParseByteSize("10KB"), 10'000u);
  for (const char* bad : {"", "KiB", "-1", "1.5MiB", "2mb", "99999999999999999999", "1 XiB"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseByteSize("17179869184GiB").ok());  // overflows uint64
  EXPECT_EQ(FormatByteSize(2u << 20), "2MiB");
  EXPECT_EQ(FormatByteSize(1000), "1000");
}

TEST(ConfigDeathTest, ReadingAKeyWithTheWrongTypeAborts) {
  auto config = Config::Load(TestSchema(), Hermetic());
  ASSERT_TRUE(config.ok());
  EXPECT_DEATH((void)config->GetString("http.port"), "http.port has type int, read as string");
  EXPECT_DEATH((void)config->GetInt("nope"), "nope is not defined");
}

TEST(ConfigDeathTest, DefiningAKeyTwiceAborts) {
  ConfigSchema schema;
  schema.DefineInt("a.b", 1, "x");
  EXPECT_DEATH(schema.DefineInt("a.b", 1, "x"), "defined twice");
  EXPECT_DEATH(schema.DefineInt("a", 1, "x"), "clash");
  EXPECT_DEATH(schema.DefineInt("A.c", 1, "x"), "malformed");
  EXPECT_DEATH(schema.DefineInt("a.c", 5, "x", {.max = 1}), "violates");
}

}  // namespace
}  // namespace atrium
