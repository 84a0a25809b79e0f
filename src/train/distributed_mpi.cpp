// The process group on OpenMPI (docs/distributed.md): MPI is joined only when mpirun started the process, so a
// plain `recur` run makes no MPI call. Collectives are non-blocking and polled with a deadline; every rank also
// tells rank 0 it arrived, so that a rank that died or hangs is named before the job is aborted.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {

namespace {

struct World {
  bool joined = false;
  int rank = 0, size = 1, local_size = 1;
  double timeout_s = 300;
};
World world;

constexpr int kArrivalTag = 7;

bool started_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

[[noreturn]] void abort_job(const std::string& message) {
  std::fprintf(stderr, "recur: error: %s\n", message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::abort();  // MPI_Abort does not return
}

// Waits for the collective `op` and the arrival notes; past the deadline, names who is missing and aborts.
// Rank 0 waits a little less than the others, so that its message (which names the ranks) comes first.
void wait_collective(MPI_Request op, std::vector<MPI_Request>& arrivals, const std::string& what) {
  std::vector<MPI_Request> all = arrivals;
  all.push_back(op);
  auto start = std::chrono::steady_clock::now();
  double limit = world.timeout_s + (world.rank == 0 ? 0.0 : 10.0);
  for (long polls = 0;; polls++) {
    bool done = true;
    for (MPI_Request& request : all) {  // MPI_Test (unlike MPI_Testall) marks each finished one
      int finished = 0;
      if (request != MPI_REQUEST_NULL) MPI_Test(&request, &finished, MPI_STATUS_IGNORE);
      done = done && (request == MPI_REQUEST_NULL);
    }
    if (done) return;
    if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < limit) continue;
    if (world.rank != 0)
      abort_job("rank " + std::to_string(world.rank) + ": " + what + " did not complete within " +
                std::to_string((int)limit) + " s; rank 0 died or hangs. The last checkpoint resumes the run.");
    std::string missing;
    for (size_t r = 0; r < arrivals.size(); r++)
      if (all[r] != MPI_REQUEST_NULL) missing += " " + std::to_string(r + 1);
    abort_job((missing.empty() ? "every rank reached " + what + ", but it did not complete within "
                               : "rank(s)" + missing + " did not reach " + what + " within ") +
              std::to_string((int)limit) +
              " s (a rank died or hangs); stopping the job. The last checkpoint resumes "
              "the run.");
  }
}

// Posts the arrival notes (ranks > 0 to rank 0) for one collective; wait_collective completes them.
std::vector<MPI_Request> post_arrivals(std::vector<int>& buffer) {
  std::vector<MPI_Request> requests;
  if (world.rank == 0) {
    buffer.assign(world.size - 1, 0);
    requests.resize(world.size - 1);
    for (int r = 1; r < world.size; r++)
      MPI_Irecv(&buffer[r - 1], 1, MPI_INT, r, kArrivalTag, MPI_COMM_WORLD, &requests[r - 1]);
  } else {
    buffer.assign(1, world.rank);
    requests.resize(1);
    MPI_Isend(buffer.data(), 1, MPI_INT, 0, kArrivalTag, MPI_COMM_WORLD, &requests[0]);
  }
  return requests;
}

}  // namespace

DistributedSession::DistributedSession(int* argc, char*** argv) {
  if (!started_by_mpirun()) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);  // only the main thread calls MPI
  world.joined = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world.size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &world.local_size);
  MPI_Comm_free(&local);
}

DistributedSession::~DistributedSession() {
  if (world.joined) MPI_Finalize();
}

bool dist_built_with_mpi() { return true; }
int dist_rank() { return world.rank; }
int dist_size() { return world.size; }
int dist_local_size() { return world.local_size; }
int dist_default_threads() {
  return std::max(1, (int)std::thread::hardware_concurrency() / std::max(1, world.local_size));
}
void dist_set_timeout(double seconds) { world.timeout_s = seconds; }

// Sum in place of n values of `type`, polled with the deadline.
static void allreduce_sum(void* data, size_t n, MPI_Datatype type, const std::string& what) {
  if (world.size == 1) return;
  check(n <= (size_t)INT_MAX, what, ": ", n, " values exceed one MPI message");
  std::vector<int> buffer;
  std::vector<MPI_Request> arrivals = post_arrivals(buffer);
  MPI_Request op;
  MPI_Iallreduce(MPI_IN_PLACE, data, (int)n, type, MPI_SUM, MPI_COMM_WORLD, &op);
  wait_collective(op, arrivals, what);
}

void dist_allreduce_sum(float* data, size_t n, const std::string& what) { allreduce_sum(data, n, MPI_FLOAT, what); }
void dist_allreduce_sum(double* data, size_t n, const std::string& what) { allreduce_sum(data, n, MPI_DOUBLE, what); }

void dist_allgather(const void* local, size_t bytes, void* all, const std::string& what) {
  if (world.size == 1) {
    std::copy((const char*)local, (const char*)local + bytes, (char*)all);
    return;
  }
  check(bytes <= (size_t)INT_MAX, what, ": ", bytes, " bytes exceed one MPI message");
  std::vector<int> buffer;
  std::vector<MPI_Request> arrivals = post_arrivals(buffer);
  MPI_Request op;
  MPI_Iallgather(local, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &op);
  wait_collective(op, arrivals, what);
}

}  // namespace recur
