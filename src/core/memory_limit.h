// core/memory_limit.h: refusing a configuration that cannot fit in this machine's memory before allocating it, with
// a message that states the estimate (docs/design.md, "Conventions").
#pragma once
#include <cstdint>
#include <string>

namespace recur {

// Physical memory of this machine in bytes (sysconf), 0 when unknown.
uint64_t machine_memory_bytes();

// Throws recur::Error when `bytes` (an estimate of what `what` needs) exceeds the machine's memory; `fix` says
// what to make smaller.
void check_fits_memory(double bytes, const std::string& what, const std::string& fix);

}  // namespace recur
