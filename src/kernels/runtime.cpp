// Thread-count control for OpenMP and OpenBLAS together, and the default count from the cores left idle.
#include "recur/runtime.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace recur {

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

CpuTimes parse_cpu_times(const std::string& stat_line) {
  std::istringstream in(stat_line);
  std::string label;
  in >> label;
  if (label != "cpu") return {};
  uint64_t field[8] = {}, value = 0;  // user nice system idle iowait irq softirq steal (guest is inside user)
  int n = 0;
  while (n < 8 && in >> value) field[n++] = value;
  if (n < 4) return {};
  CpuTimes t;
  for (int i = 0; i < n; i++) t.total += field[i];
  t.busy = t.total - field[3] - field[4];
  return t;
}

int busy_cores(const CpuTimes& before, const CpuTimes& after, int cores) {
  if (after.total <= before.total || after.busy < before.busy) return 0;
  double fraction = (double)(after.busy - before.busy) / (double)(after.total - before.total);
  return std::clamp((int)(fraction * cores + 2.0 / 3.0), 0, cores);
}

namespace {

CpuTimes read_cpu_times() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);
  return parse_cpu_times(line);
}

}  // namespace

int idle_core_threads(int sample_ms, int* busy) {
  int cores = omp_get_num_procs();
  CpuTimes before = read_cpu_times();
  *busy = 0;
  if (before.total == 0) return cores;
  std::this_thread::sleep_for(std::chrono::milliseconds(sample_ms));  // this process is idle meanwhile
  int machine_cores = (int)std::thread::hardware_concurrency();
  *busy = busy_cores(before, read_cpu_times(), std::max(machine_cores, 1));
  // busy cores outside this process's affinity mask do not take ours (a rough but safe reading: at least 1)
  return std::max(1, std::min(cores, machine_cores - *busy));
}

}  // namespace recur
