// recur/run_lock.h: one writer per training run folder. An exclusive flock on <out_dir>/lock, held for the run's life
// and released by the OS when the process ends however it ends; the holder's pid is written into the file so a
// second writer is told who holds it.
#pragma once
#include <string>

namespace recur {

class RunLock {
 public:
  // Creates out_dir if needed and locks it; throws recur::Error naming the other process when it is taken.
  explicit RunLock(const std::string& out_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace recur
