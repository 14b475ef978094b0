#include <cstdio>

#include "atrium/core/version.h"

int main() {
  std::printf("atrium %s\n", atrium::kVersion);
  return 0;
}
