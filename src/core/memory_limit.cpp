// core/memory_limit.cpp: the machine-memory bound used by the Model constructor and train_run
// (src/model/model.cpp, src/train/train_guards.cpp), so a huge config fails with a message instead of bad_alloc.
#include "core/memory_limit.h"

#include <unistd.h>

#include <cstdio>

#include "recur/error.h"

namespace recur {

uint64_t machine_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
}

void check_fits_memory(double bytes, const std::string& what, const std::string& fix) {
  uint64_t total = machine_memory_bytes();
  if (total == 0 || bytes <= (double)total) return;
  char text[128];
  std::snprintf(text, sizeof text, " need an estimated %.3g GB but this machine has %.3g GB of memory; ", bytes / 1e9,
                (double)total / 1e9);
  throw Error(what + text + fix);
}

}  // namespace recur
