// safetensors I/O: round trips of every dtype (incl. strided inputs), the byte layout, and one
// error per kind of corrupt file.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace remoe;

namespace {

// A fresh scratch directory per test case, removed at the end.
struct TempDir {
  std::filesystem::path dir;
  TempDir() {
    static int counter = 0;
    dir = std::filesystem::temp_directory_path() /
          ("remoe_st_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

// Writes an 8-byte length, `header` verbatim and `data_bytes` zero bytes.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f << header;
  for (size_t i = 0; i < data_bytes; ++i) f.put(0);
}

bool same_values(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = contiguous_data(a), cb = contiguous_data(b);
  return ca.numel() == 0 ||
         std::memcmp(ca.raw_data(), cb.raw_data(), size_t(ca.numel()) * ca.element_size()) == 0;
}

}  // namespace

TEST_CASE("safetensors round trip: every dtype, strided inputs, scalars, empty tensors, metadata") {
  TempDir tmp;
  Generator gen(5);
  Tensor f64 = randn({3, 4}, gen, {DType::f64});
  Tensor f32 = randn({2, 3, 5}, gen, {DType::f32});
  Tensor bf = randn({7}, gen, {DType::f32}).to(DType::bf16);
  Tensor i32 = randint({4, 2}, -1000, 1000, gen, {DType::i32});
  Tensor i64 = from_vector<int64_t>({-5, 0, int64_t(1) << 40, 7}, {2, 2});
  Tensor u8 = from_vector<uint8_t>({0, 1, 255, 17, 3}, {5});
  // Non-contiguous views: a transpose, a stepped slice, a broadcast (stride 0) expand.
  Tensor tr = transpose(randn({3, 5}, gen, {DType::f64}), 0, 1);
  Tensor st = slice(randn({9, 4}, gen, {DType::f32}), 0, 1, 9, 3);
  Tensor ex = expand(from_vector<int32_t>({1, 2, 3}, {1, 3}), {4, 3});
  Tensor sc = scalar_tensor(2.5, {DType::f64});
  Tensor em = zeros({0, 3}, {DType::f32});
  CHECK(!tr.is_contiguous());
  CHECK(!st.is_contiguous());
  CHECK(!ex.is_contiguous());
  std::vector<std::pair<std::string, Tensor>> ts = {{"w.f64", f64}, {"f32", f32}, {"bf16", bf},   {"i32", i32},
                                                    {"i64", i64},   {"u8", u8},   {"transposed", tr},
                                                    {"sliced", st}, {"expanded", ex}, {"scalar", sc},
                                                    {"empty", em}};
  SafetensorsMetadata meta = {{"format", "pt"}, {"step", "120"}};
  std::string p = tmp.path("a.safetensors");
  save_safetensors(p, ts, meta);
  CHECK(std::filesystem::exists(p));
  CHECK(!std::filesystem::exists(p + ".tmp"));  // written to .tmp, then renamed

  SafetensorsMetadata got_meta;
  std::map<std::string, Tensor> got = load_safetensors(p, &got_meta);
  CHECK(got_meta == meta);
  REQUIRE(got.size() == ts.size());
  for (const auto& [name, t] : ts) {
    CAPTURE(name);
    REQUIRE(got.count(name) == 1);
    const Tensor& g = got.at(name);
    CHECK(g.is_contiguous());
    CHECK(g.device().is_cpu());
    CHECK(same_values(g, t));
  }
  CHECK(got.at("expanded").to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3});
  CHECK(got.at("scalar").shape().empty());
  CHECK(got.at("scalar").item() == 2.5);

  // Saving again overwrites; without metadata the map comes back empty.
  save_safetensors(p, {{"only", u8}});
  std::map<std::string, Tensor> again = load_safetensors(p, &got_meta);
  CHECK(got_meta.empty());
  CHECK(again.size() == 1);
  CHECK(same_values(again.at("only"), u8));
  CHECK(load_safetensors(p).size() == 1);  // metadata pointer is optional
  // No tensors at all is a valid file.
  save_safetensors(p, {});
  CHECK(load_safetensors(p).empty());
}

TEST_CASE("safetensors byte layout follows the format") {
  TempDir tmp;
  std::string p = tmp.path("layout.safetensors");
  save_safetensors(p, {{"a", from_vector<float>({1, 2, 3}, {3})}, {"b", from_vector<int64_t>({-1}, {1, 1})}},
                   {{"k", "v"}});
  std::ifstream f(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  CHECK(n % 8 == 0);  // padded so the data is 8-byte aligned
  REQUIRE(bytes.size() == 8 + n + 12 + 8);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(h["__metadata__"]["k"] == "v");
  CHECK(h["a"]["dtype"] == "F32");
  CHECK(h["a"]["shape"] == nlohmann::json::array({3}));
  CHECK(h["a"]["data_offsets"] == nlohmann::json::array({0, 12}));
  CHECK(h["b"]["dtype"] == "I64");
  CHECK(h["b"]["data_offsets"] == nlohmann::json::array({12, 20}));
  float a1;
  std::memcpy(&a1, bytes.data() + 8 + n + 4, 4);
  CHECK(a1 == 2.0f);
}

TEST_CASE("save_safetensors rejects bad input") {
  TempDir tmp;
  Tensor t = zeros({2});
  std::string p = tmp.path("bad.safetensors");
  CHECK_THROWS_WITH_ALL(save_safetensors(p, {{"x", t}, {"x", t}}), "save_safetensors", "bad.safetensors", "'x'",
                        "twice");
  CHECK_THROWS_WITH_ALL(save_safetensors(p, {{"__metadata__", t}}), "save_safetensors", "reserved");
  CHECK_THROWS_WITH_ALL(save_safetensors(p, {{"u", Tensor()}}), "save_safetensors", "'u'", "undefined");
  CHECK_THROWS_WITH_ALL(save_safetensors(tmp.path("no/such/dir/x.safetensors"), {{"x", t}}), "save_safetensors",
                        "no/such/dir/x.safetensors.tmp");
  CHECK(!std::filesystem::exists(p));
}

TEST_CASE("load_safetensors names the file and the problem for each kind of corruption") {
  TempDir tmp;
  std::string p = tmp.path("c.safetensors");
  const char* L = "load_safetensors";
  auto load = [&] { return load_safetensors(p); };

  CHECK_THROWS_WITH_ALL(load_safetensors(tmp.path("missing.safetensors")), L, "cannot open", "missing.safetensors");

  {
    std::ofstream f(p, std::ios::binary);
    f << "abc";
  }
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "too short", "3 bytes");

  write_raw(p, "{}", 0);  // a valid, empty file
  CHECK(load().empty());

  {  // header length claims more bytes than the file has
    std::ofstream f(p, std::ios::binary);
    uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "header length 1000", "beyond the end");

  write_raw(p, "{\"a\": {\"dtype\": \"F32\", ", 0);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "not valid JSON");
  write_raw(p, "[1, 2]", 0);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "not a JSON object");

  write_raw(p, R"({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "unsupported dtype", "F16");
  write_raw(p, R"({"a": {"dtype": 3, "shape": [2], "data_offsets": [0, 4]}})", 4);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "dtype must be a string");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "data_offsets");
  write_raw(p, R"({"a": [1, 2]})", 0);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "must be an object");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "shape", "non-negative");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "shape", "non-negative");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "too large");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "[begin, end]");

  // Offsets that disagree with shape × dtype size.
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "span 8 bytes", "need 12");
  write_raw(p, R"({"a": {"dtype": "F64", "shape": [1], "data_offsets": [8, 0]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "need 8");
  // Offsets past the end of the data.
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})", 8);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'a'", "beyond the data buffer", "8 bytes");
  // Overlapping tensors, a gap between tensors, bytes no tensor covers.
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'b'", "overlap");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})", 20);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "'b'", "gap");
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 16);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "16 bytes", "cover 8");
  // Out-of-order offsets that tile the buffer are fine.
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                  "b": {"dtype": "U8", "shape": [2, 4], "data_offsets": [0, 8]}})", 16);
  CHECK(load().at("b").shape() == Shape{2, 4});

  // __metadata__ must map strings to strings.
  write_raw(p, R"({"__metadata__": {"k": 1}})", 0);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "__metadata__", "'k'", "string");
  write_raw(p, R"({"__metadata__": "x"})", 0);
  CHECK_THROWS_WITH_ALL(load(), L, "c.safetensors", "__metadata__", "object");
}
