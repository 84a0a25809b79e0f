// SafeTensorsFile: a safetensors file read for loading, header first, then each tensor with pread straight into
// the caller's buffer (no whole-file buffer, no parser copy), 1 MiB at a time on the checksum threads, each span
// hashed while it is still in cache (src/io/checksum.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/json_read.h"
#include "io/checksum.h"
#include "recur/error.h"
#include "recur/safetensors.h"

namespace recur {

// Reads exactly `size` bytes at `offset`, or throws naming the file (it shrank or the disk failed).
static void pread_exactly(int fd, void* to, uint64_t size, uint64_t offset, const std::string& path) {
  uint8_t* p = static_cast<uint8_t*>(to);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, (off_t)offset);
    if (n < 0 && errno == EINTR) continue;
    check(n > 0, "cannot read \"", path, "\" completely (", n < 0 ? std::strerror(errno) : "it ended early",
          "); it changed while being read, or the disk failed");
    p += n, size -= (uint64_t)n, offset += (uint64_t)n;
  }
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) {
  uint64_t size = checked_file_size(path, UINT64_MAX);  // a regular file, with a message naming it otherwise
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd_ >= 0, "cannot open \"", path, "\": ", std::strerror(errno), "; check its permissions");
  try {
    struct stat info;
    check(::fstat(fd_, &info) == 0 && (uint64_t)info.st_size == size, "\"", path, "\" changed while being opened");
    uint8_t first8[8] = {};
    pread_exactly(fd_, first8, std::min<uint64_t>(8, size), 0, path);
    uint64_t header_len = safetensors_header_length(first8, size, path);
    std::string text(header_len, '\0');
    pread_exactly(fd_, text.data(), header_len, 8, path);
    header_ = safetensors_parse_header(text, size, path);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

SafeTensorsFile::~SafeTensorsFile() { ::close(fd_); }

void SafeTensorsFile::read_f32(const std::vector<std::pair<std::string, float*>>& reads) const {
  std::vector<std::string> names;
  for (const auto& [name, to] : reads) {
    check(header_.get(name).dtype == DType::f32, header_.source, ": tensor \"", name, "\" must be F32");
    names.push_back(name);
  }
  verify_checksums(header_, names, [&](size_t tensor, uint64_t begin, uint64_t end) {
    const TensorEntry& t = header_.entries.at(names[tensor]);
    uint8_t* to = reinterpret_cast<uint8_t*>(reads[tensor].second) + begin;
    pread_exactly(fd_, to, end - begin, header_.data_start + t.begin + begin, header_.source);
    return to;
  });
}

}  // namespace recur
