#pragma once
// TorchScript export of trained roles (docs/export.md). One module per learning role, built in
// C++ (torch::jit::Module with buffers and define()): observation normalisation, the actor
// network and masked greedy action decoding are inside, so a decision engine needs nothing but
// the file:
//   forward(obs: float32 [B, obs_dim], mask: uint8/bool [B, mask_width]) -> int64 [B, D]
//       action index per component (masked values are never chosen)
//   act_values(obs, mask) -> float64 [B, D]   the numeric value of each chosen action
//   logits(obs) -> float32 [B, mask_width]    unmasked actor logits
// plus manifest.json describing features, actions, algorithm, versions and the source run.

#include <torch/script.h>

#include <string>
#include <vector>

namespace loantwin {

class Trainer;
struct RoleSpec;

/// Exports every learning role of a trained run into `out_dir` (<role>.pt + manifest.json);
/// returns the written files.
std::vector<std::string> ExportRun(Trainer& trainer, const std::string& run_dir,
                                   const std::string& checkpoint, const std::string& out_dir);

}  // namespace loantwin
