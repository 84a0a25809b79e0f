// core/config_keys.cpp: type-checked reading of config values from JSON, with errors that name the key, and
// the text a value is shown as in the command-line help.
#include "core/config_keys.h"

#include <charconv>

namespace recur {

using nlohmann::json;

namespace {

std::string quoted(const std::string& context, const std::string& key) { return context + ": \"" + key + "\""; }

}  // namespace

void read_json_value(const json& value, int& out, const std::string& context, const std::string& key) {
  check(value.is_number_integer(), quoted(context, key) + " must be an integer, got " + value.dump());
  out = value.get<int>();
}

void read_json_value(const json& value, int64_t& out, const std::string& context, const std::string& key) {
  check(value.is_number_integer(), quoted(context, key) + " must be an integer, got " + value.dump());
  out = value.get<int64_t>();
}

void read_json_value(const json& value, uint64_t& out, const std::string& context, const std::string& key) {
  check(value.is_number_unsigned(), quoted(context, key) + " must be a non-negative integer, got " + value.dump());
  out = value.get<uint64_t>();
}

void read_json_value(const json& value, float& out, const std::string& context, const std::string& key) {
  check(value.is_number(), quoted(context, key) + " must be a number, got " + value.dump());
  out = value.get<float>();
}

void read_json_value(const json& value, bool& out, const std::string& context, const std::string& key) {
  check(value.is_boolean(), quoted(context, key) + " must be true or false");
  out = value.get<bool>();
}

void read_json_value(const json& value, std::string& out, const std::string& context, const std::string& key) {
  check(value.is_string(), quoted(context, key) + " must be a string, got " + value.dump());
  out = value.get<std::string>();
}

void read_json_value(const json& value, std::vector<float>& out, const std::string& context, const std::string& key) {
  std::string message = quoted(context, key) + " must be a list of numbers, e.g. [1, 0.67, 0.33], got " + value.dump();
  check(value.is_array(), message);
  out.clear();
  for (const auto& item : value) {
    check(item.is_number(), message);
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
