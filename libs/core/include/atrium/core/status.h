// Status and Result<T>: how Atrium reports expected errors.
//
// Expected failures (bad input, missing rows, unreachable dependencies) travel as values, never as
// exceptions. Every code maps onto one HTTP status (see HttpStatusOf) and one stable snake_case
// name used in the JSON error bodies (see CodeName). Status is cheap to copy when ok (no
// allocation) and thread-compatible.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace atrium {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // 400
  kUnauthenticated,    // 401
  kPermissionDenied,   // 403
  kNotFound,           // 404
  kConflict,           // 409
  kPayloadTooLarge,    // 413
  kResourceExhausted,  // 429
  kCancelled,          // 499 (client closed request)
  kInternal,           // 500
  kNotImplemented,     // 501
  kUnavailable,        // 503
  kDeadlineExceeded,   // 504
};

// The HTTP status an error of this code is answered with.
int HttpStatusOf(StatusCode code);
// Stable machine-readable name ("not_found", "invalid_argument", ...).
std::string_view CodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // Empty when ok.
  const std::string& message() const;
  // "not_found: chat 12 does not exist" (or "ok").
  std::string ToString() const;

  // Returns a copy whose message is "context: message". No-op when ok.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;  // null when ok; immutable, so sharing is safe
};

// Constructors named after the code, e.g. NotFound("chat ", id, " does not exist").
Status InvalidArgument(std::string message);
Status Unauthenticated(std::string message);
Status PermissionDenied(std::string message);
Status NotFound(std::string message);
Status Conflict(std::string message);
Status PayloadTooLarge(std::string message);
Status ResourceExhausted(std::string message);
Status Cancelled(std::string message);
Status Internal(std::string message);
Status NotImplemented(std::string message);
Status Unavailable(std::string message);
Status DeadlineExceeded(std::string message);

// Result<T> holds either a T or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  static_assert(!std::is_same_v<T, Status>, "use Status directly");

  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an ok Status");
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "ok status without value");
  }
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Status>) Result(U&& value)
      : v_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  // The error; an ok Status when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace atrium

#define ATRIUM_CONCAT_INNER_(a, b) a##b
#define ATRIUM_CONCAT_(a, b) ATRIUM_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::atrium::Status atrium_status_ = (expr);        \
    if (!atrium_status_.ok()) return atrium_status_; \
  } while (0)

// ASSIGN_OR_RETURN(auto x, F()): binds the value of a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(ATRIUM_CONCAT_(atrium_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
