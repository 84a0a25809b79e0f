// recur/error.h: the one exception type the engine throws for bad input (configs, files, arguments).
// Messages name the problem and the fix; the CLI prints them and exits non-zero instead of crashing.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace recur {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// check(cond, parts...): throw recur::Error with the parts concatenated when cond is false. The message is
// built only then, so checks on hot paths cost a comparison.
template <class... Parts>
inline void check(bool condition, const Parts&... parts) {
  if (condition) [[likely]] return;
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

}  // namespace recur
