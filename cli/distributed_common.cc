#include "cli/distributed_common.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

#include "distributed/process_group.h"

namespace loantwin::cli {
namespace {
std::unique_ptr<Collective>& Joined() {
  static std::unique_ptr<Collective> group;
  return group;
}
}  // namespace

void AddDistributedOptions(CLI::App* cmd, DistributedArgs& args) {
  cmd->add_flag("--distributed", args.enabled,
                "one rank of a distributed run: reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT "
                "(torchrun, srun, `loantwin launch`; docs/distributed.md)");
  cmd->add_option("--dist-timeout", args.timeout_s,
                  "seconds a rendezvous or collective may take before the run stops with an "
                  "error naming the rank that did not answer")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
}

Collective* JoinProcessGroup(const DistributedArgs& args) {
  if (!args.enabled) return nullptr;
  const LaunchEnv env = ReadLaunchEnv();
  spdlog::set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}] [%^%l%$] %v", env.rank));
  GroupOptions o;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000));
  Joined() = CreateProcessGroup(env, o);
  return Joined().get();
}

void ReportFailure(const std::string& message) {
  if (Joined()) ReportRankFailure(Joined().get(), message);
}

void LeaveProcessGroup() {
  Joined().reset();
}

}  // namespace loantwin::cli
