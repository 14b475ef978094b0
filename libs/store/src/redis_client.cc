#include "atrium/store/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <cstdio>

namespace atrium::store {

struct RedisClient::Conn {
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Free> ctx;
};

namespace {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

timeval ToTimeval(std::chrono::milliseconds d) {
  return timeval{static_cast<time_t>(d.count() / 1000),
                 static_cast<suseconds_t>((d.count() % 1000) * 1000)};
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

std::string Sha1Hex(std::string_view s) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  std::string hex;
  char buf[3];
  for (unsigned char b : md) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    hex += buf;
  }
  return hex;
}

}  // namespace

RedisClient::RedisClient(RedisOptions options) : options_(std::move(options)) {}
RedisClient::~RedisClient() = default;

Result<std::unique_ptr<RedisClient>> RedisClient::Connect(RedisOptions options) {
  std::string_view url = options.url;
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("redis url must start with redis://: '" + options.url + "'");
  }
  url.remove_prefix(kScheme.size());
  std::unique_ptr<RedisClient> c(new RedisClient(options));
  if (size_t at = url.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = url.substr(0, at);
    if (size_t colon = cred.find(':'); colon != std::string_view::npos)
      cred.remove_prefix(colon + 1);
    c->password_ = std::string(cred);
    url.remove_prefix(at + 1);
  }
  if (size_t slash = url.find('/'); slash != std::string_view::npos) {
    std::string db(url.substr(slash + 1));
    url = url.substr(0, slash);
    if (!db.empty()) {
      try {
        c->db_ = std::stoi(db);
      } catch (...) {
        return InvalidArgument("redis url: bad database number '" + db + "'");
      }
    }
  }
  std::string_view host = url;
  if (size_t colon = url.rfind(':'); colon != std::string_view::npos) {
    host = url.substr(0, colon);
    try {
      c->port_ = std::stoi(std::string(url.substr(colon + 1)));
    } catch (...) {
      return InvalidArgument("redis url: bad port in '" + options.url + "'");
    }
  }
  if (host.empty()) return InvalidArgument("redis url: missing host in '" + options.url + "'");
  c->host_ = std::string(host);
  ASSIGN_OR_RETURN(auto conn, c->Open());
  std::lock_guard lock(c->mu_);
  c->idle_.push_back(std::move(conn));
  return c;
}

Result<std::unique_ptr<RedisClient::Conn>> RedisClient::Open() {
  auto conn = std::make_unique<Conn>();
  conn->ctx.reset(
      redisConnectWithTimeout(host_.c_str(), port_, ToTimeval(options_.connect_timeout)));
  if (!conn->ctx || conn->ctx->err) {
    std::string why = conn->ctx ? conn->ctx->errstr : "out of memory";
    return Unavailable("redis " + host_ + ":" + std::to_string(port_) + ": " + why);
  }
  redisSetTimeout(conn->ctx.get(), ToTimeval(options_.command_timeout));
  auto init = [&](std::vector<std::string> args) -> Status {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    std::unique_ptr<redisReply, ReplyFree> r(static_cast<redisReply*>(redisCommandArgv(
        conn->ctx.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!r) return Unavailable(std::string("redis: ") + conn->ctx->errstr);
    if (r->type == REDIS_REPLY_ERROR) return Unauthenticated("redis: " + std::string(r->str));
    return Status::Ok();
  };
  if (!password_.empty()) RETURN_IF_ERROR(init({"AUTH", password_}));
  if (db_ != 0) RETURN_IF_ERROR(init({"SELECT", std::to_string(db_)}));
  return conn;
}

Result<RedisReply> RedisClient::Run(const std::vector<std::string>& args) {
  std::unique_ptr<Conn> conn;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn) {
    ASSIGN_OR_RETURN(conn, Open());
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  std::unique_ptr<redisReply, ReplyFree> r(static_cast<redisReply*>(
      redisCommandArgv(conn->ctx.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (!r) {
    // The connection is broken (I/O error or timeout): drop it.
    return Unavailable("redis " + args[0] + ": " + conn->ctx->errstr);
  }
  Result<RedisReply> out =
      r->type == REDIS_REPLY_ERROR
          ? Result<RedisReply>(Internal("redis " + args[0] + ": " + std::string(r->str, r->len)))
          : Result<RedisReply>(Convert(r.get()));
  std::lock_guard lock(mu_);
  if (idle_.size() < static_cast<size_t>(std::max(1, options_.pool_size))) {
    idle_.push_back(std::move(conn));
  }
  return out;
}

Result<RedisReply> RedisClient::Command(const std::vector<std::string>& args) {
  if (args.empty()) return InvalidArgument("redis: empty command");
  return Run(args);
}

Result<RedisReply> RedisClient::Eval(std::string_view script, const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> cmd{"EVALSHA", Sha1Hex(script), std::to_string(keys.size())};
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  auto r = Run(cmd);
  if (!r.ok() && r.status().message().find("NOSCRIPT") != std::string::npos) {
    cmd[0] = "EVAL";
    cmd[1] = std::string(script);
    return Run(cmd);
  }
  return r;
}

Status RedisClient::Ping() {
  auto r = Command({"PING"});
  if (!r.ok()) return r.status();
  return Status::Ok();
}

}  // namespace atrium::store
