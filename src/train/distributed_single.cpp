// The process group of a build without MPI (RECUR_MPI off or OpenMPI absent at configure time): always one
// process. Started by mpirun anyway, it refuses to run, so N copies do not each train and overwrite one folder.
#include <algorithm>
#include <cstdlib>
#include <thread>

#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {

DistributedSession::DistributedSession(int*, char***) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  check(size == nullptr || std::atoi(size) <= 1, "this recur was built without MPI, so it cannot run as ", size,
        " ranks; install libopenmpi-dev (scripts/setup.sh) and reconfigure with -DRECUR_MPI=ON");
}

DistributedSession::~DistributedSession() = default;

bool dist_built_with_mpi() { return false; }
int dist_rank() { return 0; }
int dist_size() { return 1; }
int dist_local_size() { return 1; }
int dist_default_threads() { return std::max(1, (int)std::thread::hardware_concurrency()); }
void dist_set_timeout(double) {}

void dist_allreduce_sum(float*, size_t, const std::string&) {}
void dist_allreduce_sum(double*, size_t, const std::string&) {}

void dist_allgather(const void* local, size_t bytes, void* all, const std::string&) {
  std::copy((const char*)local, (const char*)local + bytes, (char*)all);
}

}  // namespace recur
