// recur/distributed.h: the process group of data-parallel training (docs/distributed.md). Under `mpirun` with MPI
// built in (RECUR_MPI) it is MPI's world; otherwise a group of one and no MPI call is made. Every MPI call of recur
// is behind this interface (src/train/distributed_mpi.cpp, or distributed_single.cpp in a build without MPI).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "recur/train.h"

namespace recur {

// Joins the process group for the lifetime of the object (MPI_Init/MPI_Finalize when started by mpirun);
// one, at the top of main.
class DistributedSession {
 public:
  DistributedSession(int* argc, char*** argv);
  ~DistributedSession();
  DistributedSession(const DistributedSession&) = delete;
  DistributedSession& operator=(const DistributedSession&) = delete;
};

bool dist_built_with_mpi();
int dist_rank();        // 0 in a single process
int dist_size();        // ranks in the job; 1 in a single process
int dist_local_size();  // ranks on this machine (for the thread default)
// Threads per rank that keep ranks × threads within this machine's cores: cores / local ranks, at least 1.
int dist_default_threads();
// Every collective below stops the job (naming the ranks that did not arrive) after waiting this long.
void dist_set_timeout(double seconds);

// Collectives over all ranks; `what` names the operation in a timeout message. Sum in place, every rank gets
// the same result; gather: `all` receives each rank's `bytes` in rank order.
void dist_allreduce_sum(float* data, size_t n, const std::string& what);
void dist_allreduce_sum(double* data, size_t n, const std::string& what);
void dist_allgather(const void* local, size_t bytes, void* all, const std::string& what);

// Data-parallel training step (docs/distributed.md): each micro-batch of the global batch is split into shards of
// contiguous rows (one per rank, or TrainConfig::reduce_shards in a fixed order for bit-identical results on any
// rank count dividing it); each rank runs forward and backward on its shards, and the gradients are combined
// weighted by counted targets, so they equal one process's mean over the whole micro-batch.
class DataParallel {
 public:
  DataParallel(const Model& model, const TrainConfig& config);
  // Whether train_step should use this (several ranks, or fixed-order shards asked for).
  bool active() const { return active_; }
  // Fills pass.grads with the sum over micro-batches of the global gradients (train_step scales by 1/grad_accum)
  // and returns the summed losses; flops and tokens of the whole global batch; depth_load of the last micro-batch.
  StepTotals gradients(TrainPass& pass, const TrainConfig& config, const BatchSource& batches, int64_t step);
  // Every config.param_check_every steps: stops the run, naming the ranks, unless all ranks hold the same
  // parameters and MoR bias.
  void check_params(const Model& model, const TrainConfig& config, int64_t step) const;

 private:
  // Token choice with several shards on this rank: a first forward of each gives its routing counts, summed
  // over all shards (per depth, then tokens): the micro-batch's.
  std::vector<double> micro_batch_route_counts(TrainPass& pass, const std::vector<Batch>& shards, int64_t step) const;

  bool active_ = false;
  int shards_ = 1, first_shard_ = 0, local_shards_ = 1, depth_slots_ = 0;
  int route_slots_ = 0;          // token choice: depths + 1 (the counts of MicroBatchShard::route_counts), else 0
  std::vector<float> partial_;   // per local shard: its weighted gradient summed over micro-batches, shard-major
  std::vector<float> gathered_;  // reduce_shards: every shard's partial, in shard order
  std::vector<double> scalars_;  // per local shard: loss, flops, tokens, depth load
};

}  // namespace recur
