#pragma once
// Pieces every exported policy shares (docs/export.md): the observation normaliser's buffers,
// the action value table, and the TorchScript source of masked greedy decoding.

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

class RunningMeanStd;
struct RoleSpec;

/// Registers obs_mean / obs_var (zeros / ones when normalisation is off) and returns the
/// TorchScript lines that turn `obs` into the network input `x`.
std::string AddObservationInput(torch::jit::Module& m, bool normalize, const RunningMeanStd& rms,
                                int64_t obs_dim);
/// Registers the action value table [components, max size] (index -> numeric value).
void AddActionValues(torch::jit::Module& m, const std::vector<int64_t>& nvec, const RoleSpec& role);
/// forward(obs, mask) (per-component argmax of `scores_method` with masked entries set to
/// `masked_fill`) and act_values(obs, mask), as TorchScript source.
std::string GreedyDecodingSource(const std::string& scores_method, const std::vector<int64_t>& nvec,
                                 const std::string& masked_fill);

}  // namespace loantwin
