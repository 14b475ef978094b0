#include "atrium/core/base64.h"

#include <gtest/gtest.h>

namespace atrium {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
}

TEST(Base64Test, DecodeRoundTripsAndRejectsMalformedInput) {
  std::string bytes("\x00\x01\xfe\xff binary", 11);
  EXPECT_EQ(*Base64Decode(Base64Encode(bytes)), bytes);
  EXPECT_EQ(*Base64Decode("Zm8="), "fo");
  EXPECT_FALSE(Base64Decode("Zm8").has_value());       // length
  EXPECT_FALSE(Base64Decode("Zm=v").has_value());      // padding inside
  EXPECT_FALSE(Base64Decode("Zm9v!A==").has_value());  // character
  EXPECT_FALSE(Base64Decode("Zg==Zg==").has_value());  // padding before the end
}

}  // namespace
}  // namespace atrium
