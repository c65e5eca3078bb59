#pragma once
// An export bundle (docs/export.md) loaded for serving: manifest + one TorchScript module per
// role, validated against this loantwin's environment, warmed up. Immutable once loaded; the
// server swaps whole bundles on reload.

#include <torch/script.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agents/export_manifest.h"
#include "env/guardrails.h"
#include "env/twin/institution.h"

namespace loantwin {

using ActionComponent = ManifestAction;

struct ServedRole {
  std::string name, algorithm;
  std::vector<std::string> features;
  std::unordered_map<std::string, int> feature_index;
  std::vector<float> low, high;  ///< valid range of each feature (+-inf: unbounded)
  /// Per feature, from the manifest: observation = (raw - center) / scale.
  std::vector<double> center, scale;
  int mask_width = 0;
  std::vector<ActionComponent> components;
  /// Pre-rendered JSON of each component's choices: "name":{"index":i,"meaning":..,"value":..}
  /// ([component][index]), so responses are concatenations.
  std::vector<std::vector<std::string>> action_json;
  /// Pre-rendered start of a decide response: {"policy_version":..,"role":..,
  std::string response_head;
  /// The manifest's guardrails that apply to this role (env/guardrails.h), and their names.
  RoleGuardrails guardrails;
  std::vector<std::string> guardrail_names;  ///< [rule index of the manifest]
  /// forward(obs, mask) -> int64 [batch, components]; frozen (parameters as constants).
  mutable torch::jit::Module module;
};

/// A role's request and response layout from its manifest entry (no module): what the parsers
/// need (the fuzz targets build roles this way).
ServedRole DescribeServedRole(const std::string& name, const ManifestRole& entry,
                              const std::string& version,
                              const std::vector<GuardrailRule>& guardrails = {});

/// Applies the role's guardrails to rows [0, n) of observations and masks: returns, per row,
/// the rules that fired (bit k: rule k of the manifest).
std::vector<uint64_t> ApplyGuardrails(const ServedRole& role, const std::vector<float>& obs,
                                      std::vector<uint8_t>& masks, int n);
/// The names of the rules in `bits`, as a JSON array ("[\"a\",\"b\"]").
std::string GuardrailJson(const ServedRole& role, uint64_t bits);

class PolicyBundle {
 public:
  /// Loads and validates `dir` (manifest against this loantwin's environment, module hashes,
  /// module shapes by a probe call); std::runtime_error naming the file and problem otherwise.
  static std::shared_ptr<const PolicyBundle> Load(const std::string& dir,
                                                  const std::string& institution_override,
                                                  int warmup_batch);

  const std::string& dir() const { return dir_; }
  /// "<experiment>@<global step>#<first 12 hex of the manifest's SHA-256>.<weights digest>":
  /// the manifest records every module file's SHA-256 (verified at load) and the weights
  /// digest (ExportManifest::WeightsDigest) names them, so the version names the exact weights.
  const std::string& version() const { return version_; }
  const ServedRole* role(const std::string& name) const;
  const std::map<std::string, ServedRole>& roles() const { return roles_; }
  const InstitutionConfig& institution() const { return *institution_; }
  const ExportManifest& manifest() const { return manifest_; }
  /// The manifest's pricing_reference is "cost_plus": offered rates move the standard spread as
  /// the cost-plus rule does (docs/serving.md, "Pricing reference").
  bool cost_plus_pricing() const { return cost_plus_pricing_; }
  /// With cost_plus_pricing: each product's cost-plus spread in the institution's calibration
  /// economy (CostPlusCalibrationBase, as the environment measures it), which the rule's move
  /// is measured from.
  double cost_plus_base(int product) const { return cost_plus_base_[product]; }

  /// Greedy actions [n x components] for observations [n x features] and masks [n x width]
  /// (1 = allowed). Thread-safe (TorchScript modules are).
  std::vector<int64_t> Decide(const ServedRole& role, const std::vector<float>& obs,
                              const std::vector<uint8_t>& masks, int n) const;

 private:
  std::string dir_, version_;
  std::map<std::string, ServedRole> roles_;
  std::shared_ptr<const InstitutionConfig> institution_;
  ExportManifest manifest_;
  bool cost_plus_pricing_ = false;
  std::vector<double> cost_plus_base_;
};

/// Graph-executor settings for serving threads (thread-local in TorchScript): no profiling
/// re-optimisation on the request path; one intra-op thread.
void ConfigureTorchThread();

}  // namespace loantwin
