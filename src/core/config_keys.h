// core/config_keys.h: a config struct described as a table of keys (name, field, help, allowed values), from
// which its JSON form, the known-key check and the command-line flags are all built: a setting is written once.
// Bottom layer: only the standard library, nlohmann-json and recur/error.h.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "recur/error.h"

namespace recur {

// An enum field seen through its index, so one entry type covers every enum: choices[i] names value (E)i.
template <class Config>
struct ChoiceField {
  std::function<int(const Config&)> get;
  std::function<void(Config&, int)> set;
};

// The struct field a key reads and writes; the alternative held is the key's type.
template <class Config>
using ConfigField = std::variant<int Config::*, int64_t Config::*, uint64_t Config::*, float Config::*, bool Config::*,
                                 std::string Config::*, std::vector<float> Config::*, ChoiceField<Config>>;

// JSON reading of one value, checking its type; `context` (e.g. "config") and `key` name it in the error.
void read_json_value(const nlohmann::json& value, int& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, int64_t& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, uint64_t& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, float& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, bool& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, std::string& out, const std::string& context, const std::string& key);
void read_json_value(const nlohmann::json& value, std::vector<float>& out, const std::string& context,
                     const std::string& key);
// The index of a string value among `choices`; an error lists them.
int read_json_choice(const nlohmann::json& value, const std::vector<std::string>& choices, const std::string& context,
                     const std::string& key);
// A value as a person types it: numbers in their shortest form (float32 as float32), strings unquoted.
std::string value_text(const nlohmann::json& value);
// "a, b, c"
std::string join_names(const std::vector<std::string>& names);

template <class Config>
struct ConfigKey {
  std::string name;  // the JSON key, and the CLI flag --name
  ConfigField<Config> field;
  std::string help;
  std::vector<std::string> choices;  // enum keys: the value names, in enum order
  bool required = false;             // reading JSON: a missing key is an error instead of keeping the default
  bool omit_default = false;         // writing JSON: left out while it holds its default (keys added later)

  bool is_list() const { return std::holds_alternative<std::vector<float> Config::*>(field); }

  nlohmann::json write(const Config& config) const {
    return std::visit(
        [&](const auto& member) -> nlohmann::json {
          if constexpr (std::is_same_v<std::decay_t<decltype(member)>, ChoiceField<Config>>)
            return choices.at(member.get(config));
          else
            return config.*member;
        },
        field);
  }

  void read(Config& config, const nlohmann::json& value, const std::string& context) const {
    std::visit(
        [&](const auto& member) {
          if constexpr (std::is_same_v<std::decay_t<decltype(member)>, ChoiceField<Config>>)
            member.set(config, read_json_choice(value, choices, context, name));
          else
            read_json_value(value, config.*member, context, name);
        },
        field);
  }

  // The key's value in a default-constructed Config, as the help shows it.
  std::string default_text() const { return value_text(write(Config{})); }
};

// Entries for a plain field (int, int64, uint64, float, bool, string, float list) and for an enum field.
template <class Config, class T>
ConfigKey<Config> config_key(std::string name, T Config::*member, std::string help) {
  return {std::move(name), member, std::move(help), {}, false, false};
}
template <class Config, class Enum>
ConfigKey<Config> config_enum_key(std::string name, Enum Config::*member, std::vector<std::string> choices,
                                  std::string help) {
  ChoiceField<Config> field{[member](const Config& c) { return (int)(c.*member); },
                            [member](Config& c, int index) { c.*member = (Enum)index; }};
  return {std::move(name), std::move(field), std::move(help), std::move(choices), false, false};
}

template <class Config>
std::vector<std::string> key_names(const std::vector<ConfigKey<Config>>& keys) {
  std::vector<std::string> names;
  for (const auto& key : keys) names.push_back(key.name);
  return names;
}

// Every key of the object `j` must be in the table; the error names the stranger and lists the valid keys.
template <class Config>
void check_known_keys(const nlohmann::json& j, const std::vector<ConfigKey<Config>>& keys, const std::string& context) {
  std::vector<std::string> names = key_names(keys);
  for (const auto& item : j.items()) {
    bool known = false;
    for (const auto& name : names) known = known || name == item.key();
    check(known, context + ": unknown key \"" + item.key() + "\"; valid keys are " + join_names(names));
  }
}

// Reads each key present in the object `j` into `config`; absent keys keep their value unless required.
template <class Config>
void read_keys(Config& config, const nlohmann::json& j, const std::vector<ConfigKey<Config>>& keys,
               const std::string& context) {
  for (const auto& key : keys) {
    if (j.contains(key.name))
      key.read(config, j[key.name], context);
    else
      check(!key.required, context + ": missing setting \"" + key.name + "\"");
  }
}

// The object of every key for which `emit` is true (all when it is empty), omit_default keys only when not default.
template <class Config>
nlohmann::json write_keys(const Config& config, const std::vector<ConfigKey<Config>>& keys,
                          const std::function<bool(const ConfigKey<Config>&)>& emit = {}) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& key : keys)
    if ((!emit || emit(key)) && !(key.omit_default && key.write(config) == key.write(Config{})))
      j[key.name] = key.write(config);
  return j;
}

// A key that acts only within one routing or layout of `Model` (the model's config, or the config itself), the test
// that it acts there, and where it acts (for the message).
template <class Model>
struct KeyScope {
  const char* key;
  bool (*acts)(const Model& model);
  const char* where;
};

// Every key of `config` set to a value other than its default where its scope does not act on `model` is refused,
// naming the key, where it acts and its default (so a saved file, which writes defaults, still loads).
template <class Config, class Model>
void refuse_inert_keys(const Config& config, const Model& model, const std::vector<ConfigKey<Config>>& keys,
                       const std::vector<KeyScope<Model>>& scopes, const std::string& context) {
  static const Config defaults;
  for (const KeyScope<Model>& scope : scopes) {
    if (scope.acts(model)) continue;
    for (const auto& key : keys) {
      if (key.name != scope.key || key.write(config) == key.write(defaults)) continue;
      throw Error(context + ": " + key.name + " = " + value_text(key.write(config)) +
                  " does nothing here: it acts only in " + scope.where + "; remove it or set it to its default " +
                  key.default_text());
    }
  }
}

}  // namespace recur
