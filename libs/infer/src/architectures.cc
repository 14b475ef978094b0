// The one place architectures are registered: add a line per new encoder file.
#include "architecture.h"
#include "bert.h"

namespace atrium::infer {

std::span<const ArchitectureFactory> Architectures() {
  static constexpr ArchitectureFactory kArchitectures[] = {
      {"bert", &LoadBertEncoder},
      {"xlm-roberta", &LoadXlmRobertaEncoder},
  };
  return kArchitectures;
}

}  // namespace atrium::infer
