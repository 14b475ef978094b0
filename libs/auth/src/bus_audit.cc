#include "atrium/auth/bus_audit.h"

#include <boost/json.hpp>

#include "atrium/core/thread_name.h"

namespace atrium::auth {

namespace json = boost::json;

std::string EncodeAuditRecord(const AuditRecord& r) {
  return json::serialize(json::object{{"at", r.at},
                                      {"workspace_id", r.workspace_id},
                                      {"actor_type", r.actor_type},
                                      {"actor_id", r.actor_id},
                                      {"action", r.action},
                                      {"resource_type", r.resource_type},
                                      {"resource_id", r.resource_id},
                                      {"ip", r.ip},
                                      {"user_agent", r.user_agent},
                                      {"outcome", r.outcome},
                                      {"details", r.details}});
}

Result<AuditRecord> DecodeAuditRecord(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("audit record: not a JSON object");
  const json::object& o = v.as_object();
  AuditRecord r;
  auto str = [&](const char* name, std::string& out) -> Status {
    auto it = o.find(name);
    if (it == o.end() || !it->value().is_string()) {
      return InvalidArgument(std::string("audit record: ") + name + " must be a string");
    }
    out = std::string(it->value().as_string());
    return Status::Ok();
  };
  auto at = o.find("at");
  if (at == o.end() || !at->value().is_int64()) {
    return InvalidArgument("audit record: at must be an integer");
  }
  r.at = at->value().as_int64();
  RETURN_IF_ERROR(str("workspace_id", r.workspace_id));
  RETURN_IF_ERROR(str("actor_type", r.actor_type));
  RETURN_IF_ERROR(str("actor_id", r.actor_id));
  RETURN_IF_ERROR(str("action", r.action));
  RETURN_IF_ERROR(str("resource_type", r.resource_type));
  RETURN_IF_ERROR(str("resource_id", r.resource_id));
  RETURN_IF_ERROR(str("ip", r.ip));
  RETURN_IF_ERROR(str("user_agent", r.user_agent));
  RETURN_IF_ERROR(str("outcome", r.outcome));
  RETURN_IF_ERROR(str("details", r.details));
  return r;
}

Result<std::unique_ptr<BusAuditSink>> BusAuditSink::Create(bus::Bus& bus, std::string topic) {
  bus::TopicOptions options;
  options.durability = bus::Durability::kSync;
  Status s = bus.CreateTopic(topic, options);
  if (!s.ok() && s.code() != StatusCode::kConflict) return s.WithContext("audit topic");
  return std::unique_ptr<BusAuditSink>(new BusAuditSink(bus, std::move(topic)));
}

Status BusAuditSink::Record(AuditRecord record) {
  bus::Message m;
  m.key = record.workspace_id;
  m.headers.emplace_back("action", record.action);
  m.payload = EncodeAuditRecord(record);
  return bus_.Publish(topic_, std::move(m)).status();
}

Result<std::unique_ptr<AuditIndexer>> AuditIndexer::Create(bus::Bus& bus, SqlAuditSink& sink,
                                                           std::string topic) {
  bus::TopicOptions options;
  options.durability = bus::Durability::kSync;
  Status s = bus.CreateTopic(topic, options);
  if (!s.ok() && s.code() != StatusCode::kConflict) return s.WithContext("audit topic");
  bus::ConsumerOptions co;
  co.name = "audit-indexer";
  co.topic = topic;
  co.start = bus::StartPosition::Earliest();
  ASSIGN_OR_RETURN(auto consumer, bus.OpenConsumer(std::move(co)));
  return std::unique_ptr<AuditIndexer>(new AuditIndexer(std::move(consumer), sink, topic));
}

AuditIndexer::~AuditIndexer() { Stop(); }

void AuditIndexer::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    SetThreadName("auth-audit");
    Run();
  });
}

void AuditIndexer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status AuditIndexer::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void AuditIndexer::Run() {
  while (!stop_) {
    auto d = consumer_->Next(std::chrono::milliseconds(200));
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
      if (d.status().code() == StatusCode::kCancelled) return;
      std::lock_guard lock(mu_);
      last_error_ = d.status();
      continue;
    }
    if (d->kind != bus::Delivery::Kind::kRecord) continue;
    const bus::Record& rec = *d->record;
    auto r = DecodeAuditRecord(rec.payload);
    Status s;
    if (r.ok()) {
      r->event_id = topic_ + ":" + std::to_string(rec.offset);
      s = sink_.Record(std::move(*r));
    }
    // A record that cannot be decoded is acknowledged (and reported): retrying cannot fix it.
    if (!r.ok() || s.ok()) {
      (void)consumer_->Ack(rec.offset);
      if (s.ok() && r.ok()) ++indexed_;
    }
    if (!r.ok() || !s.ok()) {
      std::lock_guard lock(mu_);
      last_error_ = r.ok() ? s : r.status();
    }
  }
}

}  // namespace atrium::auth
