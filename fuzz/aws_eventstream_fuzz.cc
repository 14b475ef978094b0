// libFuzzer target: the AWS event-stream decoder (services/relay, Bedrock's streaming responses)
// reads bytes from the network. It must never crash, read out of bounds or over-allocate; it
// must decode the same messages however the bytes are split; and whatever it accepts must
// re-encode to exactly the bytes it consumed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "providers/aws_eventstream.h"

namespace aws = atrium::relay::aws;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // A small bound so hostile lengths are exercised without large allocations.
  constexpr size_t kMax = 1 << 16;

  aws::EventStreamDecoder whole(kMax);
  std::vector<aws::EventStreamMessage> a;
  atrium::Status sa = whole.Feed(in, a);

  // The same bytes in two pieces, cut where the first byte says.
  size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  aws::EventStreamDecoder split(kMax);
  std::vector<aws::EventStreamMessage> b;
  atrium::Status sb = split.Feed(in.substr(0, cut), b);
  if (sb.ok()) sb = split.Feed(in.substr(cut), b);

  if (sa.ok() != sb.ok() || a.size() != b.size()) std::abort();
  std::string again;
  for (size_t i = 0; i < a.size(); ++i) {
    std::string frame = aws::EncodeEventStreamMessage(a[i]);
    if (frame != aws::EncodeEventStreamMessage(b[i])) std::abort();
    if (frame.size() > kMax) std::abort();
    again += frame;
  }
  if (in.substr(0, again.size()) != again) std::abort();
  // A clean stream is consumed completely.
  if (sa.ok() && whole.idle() && again.size() != size) std::abort();
  return 0;
}
