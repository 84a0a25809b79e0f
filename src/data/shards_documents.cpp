// The documents of text inputs, shared by tokenizer training and shard preparation: a file is one document, a
// .jsonl file one per line (a string field), a folder its files in sorted path order.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/json_read.h"
#include "recur/error.h"
#include "recur/safetensors.h"
#include "recur/shards.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxJsonlLineBytes = uint64_t(64) << 20;

bool is_jsonl(const std::string& path) { return fs::path(path).extension() == ".jsonl"; }

void jsonl_documents(const std::string& path, const std::string& field, const DocumentFn& fn) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "data: cannot read ", path);
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); line_no++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = path + " line " + std::to_string(line_no);
    nlohmann::json j = parse_json_strict(line, "data: " + where, kMaxJsonlLineBytes);
    check(j.is_object() && j.contains(field) && j[field].is_string(), "data: ", where, " has no string field \"", field,
          "\"; give the field that holds the text with --field");
    fn(j[field].get_ref<const std::string&>(), where);
  }
}

// Paragraphs: text between runs of two or more newlines (the separating newlines belong to neither side).
void paragraph_documents(std::string_view text, const std::string& path, const DocumentFn& fn) {
  int64_t n = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find("\n\n", start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) fn(text.substr(start, end - start), path + " paragraph " + std::to_string(++n));
    start = text.find_first_not_of('\n', end);
    if (start == std::string_view::npos) break;
  }
}

void file_documents(const std::string& path, const DocumentOptions& options, const DocumentFn& fn) {
  if (is_jsonl(path)) return jsonl_documents(path, options.field, fn);
  std::vector<uint8_t> bytes = read_file_bytes(path);
  std::string_view text((const char*)bytes.data(), bytes.size());
  if (options.unit == "paragraph") return paragraph_documents(text, path, fn);
  fn(text, path);
}

}  // namespace

void for_each_document(const std::vector<std::string>& inputs, const DocumentOptions& options, const DocumentFn& fn) {
  check(!inputs.empty(), "data: no inputs; give text files, folders or JSONL files");
  check(options.unit == "file" || options.unit == "paragraph", "data: unknown document unit \"", options.unit,
        "\"; use file or paragraph");
  for (const std::string& input : inputs) {
    check(path_exists(input), "data: \"", input, "\" does not exist; give text files, folders or JSONL files");
    if (!fs::is_directory(input)) {
      file_documents(input, options, fn);
      continue;
    }
    for (const std::string& f : regular_files_below(input)) file_documents(f, options, fn);
  }
}

}  // namespace recur
