// Helpers shared by the test suites: random inputs, closeness checks, the gradcheck assertion.
#pragma once
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "ops/gradcheck.h"
#include "core/random.h"
#include "ops/ops.h"

namespace remoe::test {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "tmp") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("remoe_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Writes `text` to path/name and returns that file's path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

// A whole file's bytes ("" if it cannot be read).
inline std::string read_file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A random f64 leaf that requires grad, values N(0, 1) (or uniform in [lo, hi) when lo < hi).
inline Tensor rand_leaf(const Shape& shape, uint64_t seed, double lo = 0, double hi = 0) {
  Generator gen(seed);
  Tensor t = lo < hi ? uniform(shape, gen, {DType::f64}, lo, hi) : randn(shape, gen, {DType::f64});
  t.set_requires_grad(true);
  return t;
}

// "" when every element of a and b satisfies |a − b| ≤ atol + rtol·|b|, else the worst element.
inline std::string compare_close(const Tensor& a, const Tensor& b, double atol, double rtol) {
  if (a.shape() != b.shape()) return "shapes differ: " + shape_str(a.shape()) + " vs " + shape_str(b.shape());
  std::vector<double> av = a.to(DType::f64).to_vector<double>(), bv = b.to(DType::f64).to_vector<double>();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < av.size(); ++i) {
    double excess = std::abs(av[i] - bv[i]) - (atol + rtol * std::abs(bv[i]));
    if (!(excess <= worst)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = i;
    }
  }
  if (worst <= 0) return "";
  std::ostringstream s;
  s << "element " << at << ": " << av[at] << " vs " << bv[at];
  return s.str();
}

}  // namespace remoe::test

// Asserts that autograd's gradient of f matches central differences.
// Usage: CHECK_GRADCHECK(f, {inputs...} [, GradcheckOptions]).
#define CHECK_GRADCHECK(...)                                                      \
  do {                                                                            \
    std::string _msg = ::remoe::gradcheck(__VA_ARGS__);                           \
    CHECK_MESSAGE(_msg.empty(), _msg);                                            \
  } while (0)

// Usage: CHECK_CLOSE(actual, expected, atol, rtol).
#define CHECK_CLOSE(...)                                                          \
  do {                                                                            \
    std::string _msg = ::remoe::test::compare_close(__VA_ARGS__);                 \
    CHECK_MESSAGE(_msg.empty(), _msg);                                            \
  } while (0)

// Asserts that `expr` throws remoe::Error whose message contains every listed substring.
#define CHECK_THROWS_WITH_ALL(expr, ...)                                          \
  do {                                                                            \
    std::string _what;                                                            \
    try {                                                                         \
      (void)(expr);                                                               \
    } catch (const ::remoe::Error& e) {                                           \
      _what = e.what();                                                           \
    }                                                                             \
    CHECK_MESSAGE(!_what.empty(), "expected an error from " #expr);               \
    for (const char* _part : {__VA_ARGS__})                                       \
      CHECK_MESSAGE(_what.find(_part) != std::string::npos, "error \"", _what,    \
                    "\" lacks \"", _part, "\"");                                  \
  } while (0)
