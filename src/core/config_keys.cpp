// core/config_keys.cpp: type-checked reading of config values from JSON, with errors that name the key, and
// the text a value is shown as in the command-line help.
#include "core/config_keys.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "core/json_read.h"

namespace recur {

using nlohmann::json;

namespace {

std::string quoted(const std::string& context, const std::string& key) { return context + ": \"" + key + "\""; }

// Integers are read exactly: floats (even 2.0) and values outside the field's type are refused, never narrowed.
template <class Int>
void read_integer(const json& value, Int& out, const std::string& context, const std::string& key) {
  check(value.is_number_integer(), quoted(context, key), " must be an integer, got ", brief_json(value));
  int64_t v = value.is_number_unsigned() ? 0 : value.get<int64_t>();
  bool fits = value.is_number_unsigned()
                  ? value.get<uint64_t>() <= (uint64_t)std::numeric_limits<Int>::max()
                  : v >= (int64_t)std::numeric_limits<Int>::min() && v <= (int64_t)std::numeric_limits<Int>::max();
  check(fits, quoted(context, key), " is ", brief_json(value), ", outside ", std::numeric_limits<Int>::min(), "..",
        std::numeric_limits<Int>::max(), "; use a value in range");
  out = value.get<Int>();
}

}  // namespace

void read_json_value(const json& value, int& out, const std::string& context, const std::string& key) {
  read_integer(value, out, context, key);
}

void read_json_value(const json& value, int64_t& out, const std::string& context, const std::string& key) {
  read_integer(value, out, context, key);
}

void read_json_value(const json& value, uint64_t& out, const std::string& context, const std::string& key) {
  check(value.is_number_unsigned(), quoted(context, key), " must be a non-negative integer, got ", brief_json(value));
  out = value.get<uint64_t>();
}

void read_json_value(const json& value, float& out, const std::string& context, const std::string& key) {
  check(value.is_number(), quoted(context, key), " must be a number, got ", brief_json(value));
  check(std::isfinite(value.get<float>()), quoted(context, key), " is ", brief_json(value),
        ", outside the float32 range; use a finite value");
  out = value.get<float>();
}

void read_json_value(const json& value, bool& out, const std::string& context, const std::string& key) {
  check(value.is_boolean(), quoted(context, key), " must be true or false");
  out = value.get<bool>();
}

void read_json_value(const json& value, std::string& out, const std::string& context, const std::string& key) {
  check(value.is_string(), quoted(context, key), " must be a string, got ", brief_json(value));
  out = value.get<std::string>();
}

void read_json_value(const json& value, std::vector<float>& out, const std::string& context, const std::string& key) {
  auto fail = [&] {
    throw Error(quoted(context, key) + " must be a list of numbers, e.g. [1, 0.67, 0.33], got " + brief_json(value));
  };
  if (!value.is_array()) fail();
  out.clear();
  for (const auto& item : value) {
    if (!item.is_number()) fail();
    out.push_back(item.get<float>());
  }
}

int read_json_choice(const json& value, const std::vector<std::string>& choices, const std::string& context,
                     const std::string& key) {
  check(value.is_string(), quoted(context, key) + " must be one of " + join_names(choices));
  std::string name = value.get<std::string>();
  for (size_t i = 0; i < choices.size(); i++)
    if (name == choices[i]) return (int)i;
  throw Error(context + ": unknown " + key + " \"" + name + "\"; use one of " + join_names(choices));
}

std::string value_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_float()) {
    char text[32];
    return std::string(text, std::to_chars(text, text + sizeof text, value.get<float>()).ptr);
  }
  if (value.is_array()) {
    std::string items;
    for (const auto& item : value) items += (items.empty() ? "" : ", ") + value_text(item);
    return "[" + items + "]";
  }
  return value.dump();
}

std::string join_names(const std::vector<std::string>& names) {
  std::string all;
  for (const auto& name : names) all += (all.empty() ? "" : ", ") + name;
  return all;
}

}  // namespace recur
