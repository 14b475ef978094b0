#include <gtest/gtest.h>

#include <filesystem>

#include "atrium/core/env.h"
#include "atrium/core/fault_env.h"
#include "atrium/core/testing.h"
#include "atrium/store/fs_blob_store.h"

namespace atrium::store {
namespace {

constexpr char kAbcSha[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmptySha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Regular files under `root`, temp dir included.
std::vector<std::string> FilesUnder(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.push_back(std::filesystem::relative(e.path(), root).string());
  }
  return out;
}

class FsBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() + "/blobs";
    auto store = FsBlobStore::Create(env_, root_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  atrium::testing::TempDir tmp_;
  FaultInjectionEnv env_{Env::Default()};
  std::string root_;
  std::unique_ptr<FsBlobStore> store_;
};

TEST_F(FsBlobStoreTest, PutReturnsSha256AndGetReturnsTheContent) {
  auto sha = store_->Put("abc");
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  EXPECT_EQ(*sha, kAbcSha);
  auto data = store_->Get(kAbcSha);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "abc");
  EXPECT_EQ(*store_->Size(kAbcSha), 3u);
  EXPECT_TRUE(*store_->Exists(kAbcSha));
}

TEST_F(FsBlobStoreTest, StoresBlobsInFanOutDirectories) {
  ASSERT_TRUE(store_->Put("abc").ok());
  EXPECT_EQ(store_->PathOf(kAbcSha), root_ + "/ba/78/" + kAbcSha);
  EXPECT_TRUE(std::filesystem::is_regular_file(root_ + "/ba/78/" + kAbcSha));
}

TEST_F(FsBlobStoreTest, EmptyBlobIsStorable) {
  auto sha = store_->Put("");
  ASSERT_TRUE(sha.ok());
  EXPECT_EQ(*sha, kEmptySha);
  EXPECT_EQ(*store_->Get(kEmptySha), "");
}

TEST_F(FsBlobStoreTest, PuttingExistingContentDeduplicates) {
  ASSERT_TRUE(store_->Put("abc").ok());
  auto before = std::filesystem::last_write_time(store_->PathOf(kAbcSha));
  auto again = store_->Put("abc");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, kAbcSha);
  bool done = false;
  auto streamed = store_->Put([&]() -> Result<std::string_view> {
    if (done) return std::string_view();
    done = true;
    return std::string_view("abc");
  });
  ASSERT_TRUE(streamed.ok());
  EXPECT_EQ(FilesUnder(root_).size(), 1u);
  EXPECT_EQ(std::filesystem::last_write_time(store_->PathOf(kAbcSha)), before);
}

TEST_F(FsBlobStoreTest, StreamedPutMatchesWholePut) {
  std::string big;
  for (int i = 0; i < 300000; ++i) big += static_cast<char>(i * 7);
  size_t pos = 0;
  auto streamed = store_->Put([&]() -> Result<std::string_view> {
    std::string_view chunk = std::string_view(big).substr(pos, 4096 + 17);
    pos += chunk.size();
    return chunk;
  });
  ASSERT_TRUE(streamed.ok()) << streamed.status().ToString();
  auto whole = store_->Put(big);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*streamed, *whole);
  EXPECT_EQ(*store_->Get(*whole), big);
}

TEST_F(FsBlobStoreTest, PutFromFileAndOpenStreamBack) {
  std::string src = tmp_.path() + "/src.bin";
  std::string content(3 << 20, 'q');
  content[12345] = 'x';
  ASSERT_TRUE(WriteFileAtomic(env_, src, content).ok());
  auto file = env_.NewSequentialFile(src);
  ASSERT_TRUE(file.ok());
  auto sha = store_->Put(**file);
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  auto reader = store_->Open(*sha);
  ASSERT_TRUE(reader.ok());
  std::string back, chunk;
  do {
    ASSERT_TRUE((*reader)->Read(1 << 16, &chunk).ok());
    back += chunk;
  } while (!chunk.empty());
  EXPECT_EQ(back, content);
}

TEST_F(FsBlobStoreTest, DeleteRemovesTheBlob) {
  ASSERT_TRUE(store_->Put("abc").ok());
  ASSERT_TRUE(store_->Delete(kAbcSha).ok());
  EXPECT_FALSE(*store_->Exists(kAbcSha));
  EXPECT_EQ(store_->Get(kAbcSha).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Open(kAbcSha).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Size(kAbcSha).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete(kAbcSha).code(), StatusCode::kNotFound);
}

TEST_F(FsBlobStoreTest, RejectsMalformedShasWithoutTouchingTheFilesystem) {
  const std::string bad[] = {
      "",
      "abc",
      std::string(kAbcSha).substr(0, 63),
      std::string(kAbcSha) + "0",
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
      "../../../../etc/passwd" + std::string(42, 'a'),
      "ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a\0", 64),
  };
  for (const std::string& sha : bad) {
    EXPECT_EQ(store_->Get(sha).status().code(), StatusCode::kInvalidArgument) << sha;
    EXPECT_EQ(store_->Open(sha).status().code(), StatusCode::kInvalidArgument) << sha;
    EXPECT_EQ(store_->Exists(sha).status().code(), StatusCode::kInvalidArgument) << sha;
    EXPECT_EQ(store_->Size(sha).status().code(), StatusCode::kInvalidArgument) << sha;
    EXPECT_EQ(store_->Delete(sha).code(), StatusCode::kInvalidArgument) << sha;
  }
}

TEST_F(FsBlobStoreTest, FailedAppendLeavesNoBlobAndNoTempFile) {
  env_.fail_appends = -1;
  std::string big(200000, 'a');  // larger than the file buffer, so appends reach the env
  auto sha = store_->Put(big);
  env_.fail_appends = 0;
  EXPECT_FALSE(sha.ok());
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(FsBlobStoreTest, FailedSyncLeavesNoBlobAndNoTempFile) {
  env_.fail_syncs = 1;
  auto sha = store_->Put("abc");
  EXPECT_FALSE(sha.ok());
  EXPECT_FALSE(*store_->Exists(kAbcSha));
  EXPECT_TRUE(FilesUnder(root_).empty());
  // A retry succeeds.
  ASSERT_TRUE(store_->Put("abc").ok());
  EXPECT_EQ(*store_->Get(kAbcSha), "abc");
}

TEST_F(FsBlobStoreTest, FailedRenameLeavesNoBlobAndNoTempFile) {
  env_.fail_renames = 1;
  auto sha = store_->Put("abc");
  EXPECT_FALSE(sha.ok());
  EXPECT_FALSE(*store_->Exists(kAbcSha));
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(FsBlobStoreTest, FailedOpenIsReported) {
  env_.fail_opens = 1;
  EXPECT_FALSE(store_->Put("abc").ok());
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(FsBlobStoreTest, SourceErrorIsReturnedAndLeavesNothing) {
  int calls = 0;
  auto sha = store_->Put([&]() -> Result<std::string_view> {
    if (++calls == 3) return Cancelled("client went away");
    return std::string_view("part");
  });
  EXPECT_EQ(sha.status().code(), StatusCode::kCancelled);
  EXPECT_TRUE(FilesUnder(root_).empty());
}

TEST_F(FsBlobStoreTest, OversizedPutIsPayloadTooLarge) {
  auto limited = FsBlobStore::Create(env_, tmp_.path() + "/limited", {.max_blob_bytes = 10});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ((*limited)->Put(std::string(11, 'x')).status().code(), StatusCode::kPayloadTooLarge);
  int calls = 0;
  auto streamed = (*limited)->Put([&]() -> Result<std::string_view> {
    return ++calls > 5 ? std::string_view() : std::string_view("abc");
  });
  EXPECT_EQ(streamed.status().code(), StatusCode::kPayloadTooLarge);
  EXPECT_TRUE(FilesUnder(tmp_.path() + "/limited").empty());
  EXPECT_TRUE((*limited)->Put("0123456789").ok());
}

TEST_F(FsBlobStoreTest, CreateClearsTempFilesLeftByACrash) {
  ASSERT_TRUE(WriteFileAtomic(env_, root_ + "/tmp/put-123", "half").ok());
  ASSERT_TRUE(store_->Put("abc").ok());
  auto reopened = FsBlobStore::Create(env_, root_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(FilesUnder(root_), std::vector<std::string>{"ba/78/" + std::string(kAbcSha)});
  EXPECT_EQ(*(*reopened)->Get(kAbcSha), "abc");
}

TEST(Sha256HexTest, AcceptsOnlyLowercaseHexOfLength64) {
  EXPECT_TRUE(IsValidSha256Hex(kAbcSha));
  EXPECT_FALSE(IsValidSha256Hex(std::string(64, 'g')));
  EXPECT_FALSE(IsValidSha256Hex(std::string(64, 'A')));
}

}  // namespace
}  // namespace atrium::store
