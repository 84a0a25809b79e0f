// Printing float32 settings in JSON: nlohmann stores numbers as double, so 0.001f would be written as
// 0.0010000000474974513. Rewriting each float as the double nearest its shortest float32 decimal prints
// 0.001 and still reads back as the same float32.
#pragma once
#include <charconv>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

namespace recur {

inline void shorten_float32_numbers(nlohmann::json& j) {
  if (j.is_number_float()) {
    char text[32];
    auto end = std::to_chars(text, text + sizeof text, (float)j.get<double>()).ptr;
    j = std::strtod(std::string(text, end).c_str(), nullptr);
  } else if (j.is_structured()) {
    for (auto& child : j) shorten_float32_numbers(child);
  }
}

}  // namespace recur
