// tools/recur.cpp: the `recur` command-line program, a thin layer over the engine library. main creates the
// app and the global --threads and --skip_checksums flags, registers the subcommands (one file each: train, sample,
// serve, server, experiment, task, export, eval, tokenizer train/encode/decode, data prepare, bench
// train/mor/serve/decode), parses, and runs the one given with the program's error handling. Under mpirun it joins the
// process group first (docs/distributed.md); ranks other than 0 print only errors.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

#include "cli.h"
#include "recur/distributed.h"
#include "recur/error.h"
#include "recur/runtime.h"

using namespace recur;

// Threads per rank (0: the default that keeps all local ranks within the cores); rank 0 says what it chose, and
// the other ranks' stdout is closed so that the job prints one progress line per step.
static int rank_threads(int asked) {
  int threads = asked > 0 ? asked : dist_default_threads();
  int cores = (int)std::thread::hardware_concurrency();
  if (dist_rank() == 0)
    std::printf("recur: %d ranks (%d on this machine) x %d threads per rank on %d cores%s\n", dist_size(),
                dist_local_size(), threads, cores,
                threads * dist_local_size() > cores ? " (oversubscribed: lower --threads)" : "");
  else
    check(std::freopen("/dev/null", "w", stdout) != nullptr, "cannot silence the output of rank ", dist_rank());
  return threads;
}

// Without --threads: every core that other processes leave idle (recur/runtime.h), said on stderr when that is
// fewer than all, so that a busy machine degrades to fewer threads instead of a team waiting on a preempted one.
static int default_threads() {
  int busy = 0, threads = idle_core_threads(50, &busy);
  if (busy > 0)
    std::fprintf(stderr, "recur: %d of %d cores busy with other processes: %d thread%s (--threads N to choose)\n", busy,
                 (int)std::thread::hardware_concurrency(), threads, threads == 1 ? "" : "s");
  return threads;
}

int main(int argc, char** argv) {
  CLI::App app{"recur: train, evaluate and serve looped and recursive transformers on the CPU"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  int threads = 0;
  CLI::Option* threads_flag = app.add_option(
      "--threads", threads,
      "threads for kernels and BLAS (0: all cores; default: the cores other processes leave idle; under mpirun: "
      "cores / ranks)");
  bool skip_checksums = false;
  app.add_flag("--skip_checksums", skip_checksums,
               "load safetensors files and token shards without verifying their checksums (RECUR_SKIP_CHECKSUMS=1)");
  std::vector<cli::Command> commands = {cli::add_train_command(app),      cli::add_sample_command(app),
                                        cli::add_serve_command(app),      cli::add_server_command(app),
                                        cli::add_experiment_command(app), cli::add_task_command(app),
                                        cli::add_export_command(app),     cli::add_eval_command(app)};
  for (auto add_group : {cli::add_tokenizer_commands, cli::add_data_commands})
    for (const cli::Command& command : add_group(app)) commands.push_back(command);
  CLI::App* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  for (auto add : {cli::add_bench_train_command, cli::add_bench_mor_command, cli::add_bench_serve_command,
                   cli::add_bench_decode_command})
    commands.push_back(add(*bench));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear at once in logs
  try {
    DistributedSession session(&argc, &argv);
    if (dist_size() > 1)
      threads = rank_threads(threads_flag->count() > 0 ? threads : 0);
    else if (threads_flag->count() == 0)
      threads = default_threads();
    set_num_threads(threads);
    if (skip_checksums) setenv("RECUR_SKIP_CHECKSUMS", "1", 1);  // read where each file is loaded
    for (const cli::Command& command : commands)
      if (*command.app) return command.run();
  } catch (const Error& e) {
    std::fprintf(stderr, "recur: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recur: unexpected error: %s\n", e.what());
    return 3;
  }
  return 0;
}
