#include "atrium/core/thread_name.h"

#include <pthread.h>

namespace atrium {

namespace {
constexpr size_t kMaxNameBytes = 15;  // Linux: TASK_COMM_LEN - 1
}

void SetThreadName(std::string_view name) {
#if defined(__linux__)
  std::string cut(name.substr(0, kMaxNameBytes));
  (void)pthread_setname_np(pthread_self(), cut.c_str());
#else
  (void)name;
#endif
}

std::string ThreadName() {
#if defined(__linux__)
  char buf[kMaxNameBytes + 1] = {};
  if (pthread_getname_np(pthread_self(), buf, sizeof(buf)) != 0) return "";
  return buf;
#else
  return "";
#endif
}

}  // namespace atrium
