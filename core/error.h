// Errors: every failed check throws remoe::Error with a message that names the op and the values
// involved (shapes, dtypes, keys), so that bad input never crashes or yields silent garbage.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace remoe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates its arguments with operator<< and throws them as one remoe::Error.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  throw Error(s.str());
}

}  // namespace remoe

// REMOE_CHECK(cond, "op: ", detail, ...): throws remoe::Error with the message if cond is false.
#define REMOE_CHECK(cond, ...)                 \
  do {                                         \
    if (!(cond)) ::remoe::fail(__VA_ARGS__);   \
  } while (0)
