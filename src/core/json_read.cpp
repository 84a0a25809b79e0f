// core/json_read.cpp: bounded, strict JSON parsing and file reading for every reader of outside input
// (docs/design.md, "Conventions": bad input is a recur::Error naming the problem and the fix, never a crash).
#include "core/json_read.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "recur/error.h"

namespace recur {

using nlohmann::json;

namespace fs = std::filesystem;

json parse_json_strict(std::string_view text, const std::string& source, uint64_t max_bytes) {
  check(text.size() <= max_bytes, source, ": ", (uint64_t)text.size(), " bytes of JSON exceed the limit of ", max_bytes,
        "; this is not a file recur wrote");
  const void* nul = std::memchr(text.data(), 0, text.size());
  check(nul == nullptr, source, ": a NUL byte at offset ",
        (uint64_t)(nul ? static_cast<const char*>(nul) - text.data() : 0), " inside JSON; the file is damaged");
  // The parser itself is iterative; refusing depth here keeps every later walk over the value shallow.
  json::parser_callback_t limit_depth = [&](int depth, json::parse_event_t, json&) {
    check(depth <= kMaxJsonDepth, source, ": JSON nested deeper than ", kMaxJsonDepth,
          " levels; recur's files are flat objects");
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit_depth);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers such as 1e999
    throw Error(source + ": not valid JSON (" + e.what() + "); fix the syntax at the place named");
  }
}

std::string brief_json(const json& value) {
  if (value.is_object()) return "an object of " + std::to_string(value.size()) + " keys";
  if (value.is_array()) return "a list of " + std::to_string(value.size()) + " items";
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

uint64_t checked_file_size(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  check(fs::exists(status), "cannot open \"", path, "\": it does not exist; check the path");
  check(fs::is_regular_file(status), "cannot read \"", path, "\": it is not a regular file (a directory?); ",
        "put the file there or point at the right folder");
  uint64_t size = fs::file_size(path, ec);
  check(!ec, "cannot read the size of \"", path, "\": ", ec.message());
  check(size <= max_bytes, "\"", path, "\" has ", size, " bytes, more than the ", max_bytes,
        " recur accepts for it; it is not a file recur wrote");
  return size;
}

std::string read_file_checked(const std::string& path, uint64_t max_bytes) {
  uint64_t size = checked_file_size(path, max_bytes);
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot open \"", path, "\"; check its permissions");
  std::string bytes(size, '\0');
  in.read(bytes.data(), (std::streamsize)size);
  check((uint64_t)in.gcount() == size, "cannot read \"", path, "\" completely (it changed while being read?)");
  return bytes;
}

bool path_exists(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) return false;
  check(!ec, "cannot examine \"", path, "\": ", ec.message(), "; fix the path (or the symbolic link it names)");
  return true;
}

std::vector<std::string> regular_files_below(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec) && !ec) files.push_back(it->path().string());
  check(!ec, "cannot list the folder \"", dir, "\": ", ec.message(), "; fix its permissions or give its files");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace recur
