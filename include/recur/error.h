// recur/error.h: the one exception type the engine throws for bad input (configs, files, arguments).
// Messages name the problem and the fix; the CLI prints them and exits non-zero instead of crashing.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace recur {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

inline void append_message_part(std::string& out, std::string_view text) { out += text; }
inline void append_message_part(std::string& out, char c) { out += c; }
template <typename Number>
requires std::is_arithmetic_v<Number>
void append_message_part(std::string& out, Number value) { out += std::to_string(value); }

// Out of line and cold, so a check on a hot path costs only its test and a call.
template <typename... Parts>
[[noreturn, gnu::cold, gnu::noinline]] void throw_check_failure(const Parts&... parts) {
  std::string message;
  (append_message_part(message, parts), ...);
  throw Error(message);
}

}  // namespace detail

// check(cond, parts...): throw recur::Error with the parts concatenated (strings as they are, numbers as
// std::to_string writes them) when cond is false. The message is built only then, so callers pass its pieces
// rather than a string built with `+`.
template <typename... Parts>
inline void check(bool condition, const Parts&... parts) {
  if (!condition) [[unlikely]]
    detail::throw_check_failure(parts...);
}

}  // namespace recur
