#include <gtest/gtest.h>

#include <cstring>

#include "format/safetensors.h"
#include "test_helpers.h"

namespace oss4 {
namespace {

using test::safetensors_bytes;

Status parse(const std::string& file) {
  auto r = parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), file.size());
  return r.status();
}

TEST(Safetensors, ParsesValidHeader) {
  std::string f = safetensors_bytes(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      std::string(12, '\0'));
  auto r = parse_safetensors_header(reinterpret_cast<const uint8_t*>(f.data()), f.size(), f.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[0].name, "a");  // sorted by offset
  EXPECT_EQ(r->entries[1].dtype, DType::kBF16);
  EXPECT_EQ(r->metadata.at("format"), "pt");
}

TEST(Safetensors, RejectsBadHeaders) {
  const std::string data(16, '\0');
  struct Case {
    std::string header, data, expect;
  } cases[] = {
      {"{not json", data, "well-formed JSON"},
      {"[1,2]", data, "not an object"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data, "twice"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data, "overlap"},
      {R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data, "past the end"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data, "needs 12 bytes"},
      {R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", data, "unsupported dtype"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data, "negative"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", data, "begin > end"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", data, "data_offsets"},
      {R"({"a":{"shape":[1],"data_offsets":[0,4]}})", data, "dtype"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", data, "overflows"},
      {R"({"__metadata__":{"x":1}})", data, "not a string"},
  };
  for (const auto& c : cases) {
    Status s = parse(safetensors_bytes(c.header, c.data));
    ASSERT_FALSE(s.ok()) << c.header;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.header << " -> " << s.message();
  }
}

TEST(Safetensors, RejectsTruncatedFiles) {
  std::string f = safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(16, '\0'));
  for (size_t cut : {size_t{0}, size_t{4}, size_t{8}, size_t{20}, f.size() - 1}) {
    std::string t = f.substr(0, cut);
    Status s = parse(t);
    EXPECT_FALSE(s.ok()) << "cut at " << cut;
  }
  std::string huge_len(8, '\xff');
  EXPECT_NE(parse(huge_len + "{}").message().find("100 MB"), std::string::npos);
}

TEST(Safetensors, WriterRoundTripsAndIsAtomic) {
  std::string dir = test::make_temp_dir();
  std::string path = dir + "/w.safetensors";
  {
    SafetensorsWriter w(path);
    w.declare("x", DType::kF32, {2, 3});
    w.declare("y", DType::kU8, {5});
    w.set_metadata("format", "pt");
    ASSERT_TRUE(w.begin().ok());
    float x[6] = {1, 2, 3, 4, 5, 6};
    ASSERT_TRUE(w.write(x, 12).ok());
    ASSERT_TRUE(w.write(x + 3, 12).ok());
    EXPECT_FALSE(file_exists(path)) << "visible before finish";
    const uint8_t y[5] = {9, 8, 7, 6, 5};
    ASSERT_TRUE(w.write(y, 5).ok());
    EXPECT_FALSE(w.write(y, 1).ok()) << "more bytes than declared";
    ASSERT_TRUE(w.finish().ok());
  }
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorView* x = (*f)->find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(reinterpret_cast<const float*>(x->data)[5], 6.0f);
  EXPECT_EQ((*f)->find("y")->data[4], 5);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x->data) % 8, 0u) << "data region is 8-byte aligned";

  // a writer that never finishes leaves no file behind
  {
    SafetensorsWriter w(dir + "/never.safetensors");
    w.declare("x", DType::kF32, {1});
    ASSERT_TRUE(w.begin().ok());
  }
  EXPECT_FALSE(file_exists(dir + "/never.safetensors"));
  // finishing short of the declared bytes fails and leaves nothing
  {
    SafetensorsWriter w(dir + "/short.safetensors");
    w.declare("x", DType::kF32, {4});
    ASSERT_TRUE(w.begin().ok());
    float v = 1;
    ASSERT_TRUE(w.write(&v, 4).ok());
    EXPECT_FALSE(w.finish().ok());
  }
  EXPECT_FALSE(file_exists(dir + "/short.safetensors"));
}

void write_tensor_file(const std::string& path, const std::vector<std::pair<std::string, float>>& tensors) {
  SafetensorsWriter w(path);
  for (const auto& t : tensors) w.declare(t.first, DType::kF32, {1});
  ASSERT_TRUE(w.begin().ok());
  for (const auto& t : tensors) ASSERT_TRUE(w.write(&t.second, 4).ok());
  ASSERT_TRUE(w.finish().ok());
}

TEST(Safetensors, ShardedCheckpointResolvesThroughIndex) {
  std::string dir = test::make_temp_dir();
  // the release's zero-based names: three files "of-00002"
  write_tensor_file(dir + "/model-00000-of-00002.safetensors", {{"a", 1.0f}, {"b", 2.0f}});
  write_tensor_file(dir + "/model-00001-of-00002.safetensors", {{"c", 3.0f}});
  write_tensor_file(dir + "/model-00002-of-00002.safetensors", {{"d", 4.0f}, {"b", 99.0f}});
  test::write_bytes(dir + "/model.safetensors.index.json",
                    R"({"metadata":{"total_size":16},"weight_map":{"a":"model-00000-of-00002.safetensors","b":"model-00000-of-00002.safetensors",)"
                    R"("c":"model-00001-of-00002.safetensors","d":"model-00002-of-00002.safetensors"}})");
  auto st = TensorStore::open_dir(dir);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->names().size(), 4u);
  EXPECT_EQ(*reinterpret_cast<const float*>(st->find("b")->data), 2.0f) << "the index decides which copy counts";
  EXPECT_EQ(*reinterpret_cast<const float*>(st->find("d")->data), 4.0f);
  auto bad = st->require("c", DType::kBF16, {1});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model-00001-of-00002.safetensors"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("expected [1] BF16"), std::string::npos) << bad.status().message();
  auto missing = st->require("zzz");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing tensor 'zzz'"), std::string::npos);

  // an index naming a tensor that no shard holds
  test::write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"model-00000-of-00002.safetensors","e":"model-00001-of-00002.safetensors"}})");
  auto st2 = TensorStore::open_dir(dir);
  ASSERT_FALSE(st2.ok());
  EXPECT_NE(st2.status().message().find("'e'"), std::string::npos) << st2.status().message();
  // a malformed index
  test::write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map":)");
  EXPECT_FALSE(TensorStore::open_dir(dir).ok());
  test::write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"../etc/passwd"}})");
  EXPECT_FALSE(TensorStore::open_dir(dir).ok());
}

TEST(Safetensors, OpenReportsThePath) {
  std::string dir = test::make_temp_dir();
  test::write_bytes(dir + "/bad.safetensors", "abc");
  auto f = SafetensorsFile::open(dir + "/bad.safetensors");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("bad.safetensors"), std::string::npos);
  auto g = SafetensorsFile::open(dir + "/nope.safetensors");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace oss4
