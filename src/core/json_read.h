// core/json_read.h: the one way recur reads JSON and small files from outside (configs, train state, safetensors
// headers, serve requests): bounded size and nesting depth, strict syntax, and errors that name the source and the
// fix without echoing the (possibly huge or deep) value. See docs/design.md, "Conventions".
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace recur {

// Deeper JSON is refused while parsing, so no recursive walk (dump, copy, destruction) ever meets a deep value.
constexpr int kMaxJsonDepth = 64;
constexpr uint64_t kMaxConfigBytes = uint64_t(1) << 20;  // config.json, train_state.json, task options

// One JSON value from `text`: at most max_bytes, no NUL byte, depth <= kMaxJsonDepth, nothing but whitespace after
// the value. Errors (recur::Error) start with `source`.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source, uint64_t max_bytes);

// A value in an error message: scalars as JSON (long strings cut), objects and arrays by kind and size only.
std::string brief_json(const nlohmann::json& value);

// The size of the regular file `path`, at most max_bytes; a missing file, a directory or a larger file is an Error
// naming the path.
uint64_t checked_file_size(const std::string& path, uint64_t max_bytes);
// The whole of a regular file of at most max_bytes; a missing file, a directory or a larger file is an Error naming
// the path.
std::string read_file_checked(const std::string& path, uint64_t max_bytes);

// Whether `path` exists; a path that cannot be examined (a symlink loop, a component that is not a folder) is an
// Error naming it, never a std::filesystem exception.
bool path_exists(const std::string& path);
// The regular files below folder `dir`, in sorted path order; a subfolder that cannot be read is an Error naming it.
std::vector<std::string> regular_files_below(const std::string& dir);

}  // namespace recur
