#pragma once
// resnet::Error: the one exception type every bad input throws, and the check helpers that build its
// messages.

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace resnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "[2, 3, 32, 32]": how every message prints a shape.
inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i)
    out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename First, typename... Rest>
void append_all(std::ostringstream& out, First&& first, Rest&&... rest) {
  out << std::forward<First>(first);
  append_all(out, std::forward<Rest>(rest)...);
}
}  // namespace detail

// Throws resnet::Error with the pieces streamed together, e.g. fail("Conv2d: expected ", 3, " channels").
template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream out;
  detail::append_all(out, std::forward<Parts>(parts)...);
  throw Error(out.str());
}

// Throws as fail() unless `condition` holds. Its parts are evaluated either way: where one costs (a
// shape_string on every forward), write `if (!condition) fail(...)` instead.
template <typename... Parts>
void check(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace resnet
