// The default thread count's reading of /proc/stat (include/recur/runtime.h): parsing the cpu line, and how many
// cores count as busy between two readings.
#include "recur/runtime.h"

#include <gtest/gtest.h>

using namespace recur;

TEST(Runtime, ParsesTheCpuLineOfProcStat) {
  CpuTimes t = parse_cpu_times("cpu  100 5 20 800 10 1 2 3 0 0");
  EXPECT_EQ(t.total, 941u);
  EXPECT_EQ(t.busy, 941u - 800 - 10);
  EXPECT_EQ(parse_cpu_times("cpu  1 2 3 4").total, 10u);      // old kernels: four fields
  EXPECT_EQ(parse_cpu_times("cpu0 100 5 20 800").total, 0u);  // a per-core line is not the total
  EXPECT_EQ(parse_cpu_times("intr 5 6 7 8").total, 0u);
  EXPECT_EQ(parse_cpu_times("cpu 1 2").total, 0u);
  EXPECT_EQ(parse_cpu_times("").total, 0u);
}

TEST(Runtime, CountsACoreBusyFromAThirdOfItsTime) {
  CpuTimes before{1000, 4000};
  auto after = [&](uint64_t busy, uint64_t total) { return CpuTimes{before.busy + busy, before.total + total}; };
  EXPECT_EQ(busy_cores(before, after(1, 200), 2), 0);    // a quiet machine
  EXPECT_EQ(busy_cores(before, after(100, 200), 2), 1);  // one core of two fully busy
  EXPECT_EQ(busy_cores(before, after(30, 200), 2), 0);   // 0.3 of a core
  EXPECT_EQ(busy_cores(before, after(40, 200), 2), 1);   // 0.4 of a core
  EXPECT_EQ(busy_cores(before, after(200, 200), 2), 2);
  EXPECT_EQ(busy_cores(before, after(350, 400), 4), 4);  // 3.5 cores
  EXPECT_EQ(busy_cores(before, before, 2), 0);           // no time passed
  EXPECT_EQ(busy_cores(after(5, 5), before, 2), 0);      // counters that went backwards
}

TEST(Runtime, IdleCoreThreadsIsAtLeastOne) {
  int busy = -1;
  int threads = idle_core_threads(20, &busy);
  EXPECT_GE(threads, 1);
  EXPECT_GE(busy, 0);
}
