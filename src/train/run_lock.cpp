// The run-folder lock (recur/run_lock.h), taken by train_run (src/train/trainer.cpp) before it reads a checkpoint
// to resume from or writes anything, so `recur train`, `--resume` and `recur experiment` all respect it.
#include "recur/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "recur/error.h"

namespace recur {

namespace {

// The pid the holder wrote into the lock file ("unknown" if it has not yet).
std::string holder_pid(int fd) {
  char text[32] = {};
  ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  std::string pid = n > 0 ? std::string(text, (size_t)n) : "";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

RunLock::RunLock(const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  std::string path = out_dir + "/lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  check(fd_ >= 0, "train: cannot open the run lock \"", path, "\": ", std::strerror(errno),
        "; check that the --out folder is writable");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string pid = holder_pid(fd_);
    ::close(fd_);
    check(error != EWOULDBLOCK, "train: ", out_dir, " is in use by another recur process (pid ", pid, ", in ", path,
          "); wait for it to finish, stop it, or train into another --out folder");
    throw Error("train: cannot lock \"" + path + "\": " + std::strerror(error));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  bool written = ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) == (ssize_t)pid.size();
  if (!written) {
    std::string why = std::strerror(errno);
    ::close(fd_);
    throw Error("train: cannot write the run lock \"" + path + "\": " + why);
  }
}

RunLock::~RunLock() { ::close(fd_); }  // closing releases the flock

}  // namespace recur
