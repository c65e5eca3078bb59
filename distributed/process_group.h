#pragma once
// A distributed run's process group on LibTorch's c10d: a TCPStore for the rendezvous and a
// ProcessGroupGloo for the collectives (docs/distributed.md). Launched the way PyTorch jobs are:
// the ranks read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT), so torchrun, a Kubernetes PyTorchJob, Slurm (see the docs for the mapping) or
// `loantwin launch` start them.
//
// Failure: every rank publishes a heartbeat and the number of collectives it has entered in the
// store; a collective that fails or times out is diagnosed from them, and the CollectiveError
// names the rank that died, hung or reported an error.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/collective.h"

namespace loantwin {

/// torchrun's variables, read and checked.
struct LaunchEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  /// torchrun hosts the store itself (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a
  /// client, keys under /worker/attempt_<TORCHELASTIC_RESTART_COUNT>/.
  bool agent_store = false;
  int restart_count = 0;
};

/// Reads the launch environment through `get` (getenv by default). ConfigError naming the
/// variable that is missing or malformed, e.g. "RANK is not set (run under torchrun, srun or
/// `loantwin launch`; docs/distributed.md)".
LaunchEnv ReadLaunchEnv(const std::function<const char*(const char*)>& get = nullptr);

struct GroupOptions {
  /// A collective (or the rendezvous) that does not complete within it fails.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  /// How often a rank tells the store it is alive (the failure diagnosis reads it).
  std::chrono::milliseconds heartbeat{std::chrono::seconds(1)};
};

/// Connects to the store (rank 0 hosts it unless torchrun does), checks every rank was started
/// with the same world size, and creates the Gloo group. CollectiveError when the master cannot
/// be reached within the timeout or the ranks disagree.
std::unique_ptr<Collective> CreateProcessGroup(const LaunchEnv& env, const GroupOptions& options);

/// Reports this rank's failure to the others (their diagnosis quotes it); best effort, for the
/// CLI's error path.
void ReportRankFailure(Collective* group, const std::string& message);

}  // namespace loantwin
