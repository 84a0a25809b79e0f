// recur/runtime.h: process-wide settings: the thread count shared by our OpenMP kernels and the BLAS.
// One OpenMP runtime serves both (OpenBLAS's OpenMP build), so there is no oversubscription; BLAS calls
// made inside our parallel regions run single-threaded.
#pragma once
#include <cstdint>
#include <string>

namespace recur {

void set_num_threads(int n);  // n <= 0: all cores
int num_threads();

// Jiffies of /proc/stat's first line ("cpu  user nice system idle iowait irq softirq steal ..."), summed over
// every core: busy (all but idle and iowait) and all. A line that is not such a line gives zeros.
struct CpuTimes {
  uint64_t busy = 0, total = 0;
};
CpuTimes parse_cpu_times(const std::string& stat_line);

// How many of `cores` cores were busy between two readings: cores * Δbusy / Δtotal, a core counting once it was
// busy a third of the time (an OpenMP team with a thread on such a core waits for it at every barrier).
int busy_cores(const CpuTimes& before, const CpuTimes& after, int cores);

// The default thread count (no --threads): the cores this process may run on minus those that other processes
// kept busy over `sample_ms` milliseconds, at least 1. Two threads on two cores, one of them busy, run slower
// than one thread (the team waits for its preempted thread at every barrier); this avoids that at start-up.
// `busy` gets the busy count; /proc/stat unreadable: every core, busy 0.
int idle_core_threads(int sample_ms, int* busy);

}  // namespace recur
