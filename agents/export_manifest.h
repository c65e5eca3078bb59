#pragma once
// The manifest of an export bundle (manifest.json, docs/export.md, schema in
// docs/schemas/manifest.schema.json): one type that export writes and that serving and stress
// evaluation read. It records what the modules expect (features with their bounds and scaling,
// the action layout), what produced them (run, checkpoint, versions) and a SHA-256 of every
// module file, so a bundle whose weights were swapped or edited is refused at load.
//
// Every problem is a ManifestError whose message starts with the manifest's path.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "env/guardrails.h"

namespace loantwin {

class MultiAgentEnv;
struct RoleSpec;

class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ManifestFeature {
  std::string name;
  double low = 0, high = 0;      ///< the observation box (+-inf: unbounded; JSON null)
  double center = 0, scale = 1;  ///< observation = (raw - center) / scale
};

struct ManifestAction {
  std::string name;
  int size = 0, mask_offset = 0;
  std::vector<std::string> meanings;  ///< per index (may be empty)
  std::vector<double> values;         ///< numeric value per index (may be empty)
};

struct ManifestRole {
  std::string name;
  std::string file;                                ///< the policy module, <role>.pt
  std::map<std::string, std::string> extra_files;  ///< further modules by name ("model")
  std::string algorithm;
  int cadence = 1;
  std::vector<ManifestFeature> features;
  bool normalised_inside = false;
  int mask_width = 0;
  std::vector<ManifestAction> actions;
  std::vector<std::string> methods;
  nlohmann::json hyperparameters = nlohmann::json::object();

  std::vector<std::string> FeatureNames() const;
  /// Index of a feature, -1 if absent.
  int FindFeature(const std::string& name) const;
};

struct ExportManifest {
  static constexpr int kFormatVersion = 2;
  int format_version = kFormatVersion;
  std::string loantwin_version;
  std::string torch_version;
  std::string environment;
  int environment_version = 0;
  std::string institution;  ///< twin exports: the preset trained on ("" otherwise)
  /// Twin exports trained on several institutions (env.config.institutions): all of them, the
  /// first being `institution` (the served one unless the server names another); else empty.
  std::vector<std::string> institutions;
  /// Twin exports: what the pricing policy's offsets are measured from (the experiment's
  /// env.config.pricing_reference: "standard" or "cost_plus"); "" (not recorded) = standard.
  std::string pricing_reference;
  std::string experiment, source_run, checkpoint;
  int64_t global_step = 0;
  std::map<std::string, ManifestRole> roles;
  std::map<std::string, std::string> module_sha256;  ///< file name -> SHA-256 (hex)
  /// The experiment's constraints with their multipliers at the checkpoint (name, metric,
  /// min/max, cost, limit, lambda, roles); an empty array when it has none.
  nlohmann::json constraints = nlohmann::json::array();
  /// The experiment's guardrails (env/guardrails.h): serving and stress evaluation apply them
  /// before the policy decides, as training did.
  std::vector<GuardrailRule> guardrails;

  /// The description of a role as the environment defines it (features, bounds, actions).
  static ManifestRole DescribeRole(const RoleSpec& spec);

  nlohmann::json ToJson() const;
  /// `where` prefixes every error (the manifest's path).
  static ExportManifest FromJson(const nlohmann::json& json, const std::string& where);
  /// Reads <dir>/manifest.json (missing, unreadable, not JSON or malformed -> ManifestError).
  static ExportManifest Load(const std::string& dir);
  /// Writes <dir>/manifest.json atomically.
  void Save(const std::string& dir) const;

  /// Checks the manifest against this loantwin's environment: its name and version, every
  /// role known, each role's features (names, bounds, scaling), mask width and action
  /// components (sizes, contiguous offsets, meanings) equal to the environment's.
  void Validate(const MultiAgentEnv& env, const std::string& where) const;
  /// Recomputes the SHA-256 of every module file under `dir` and compares it with
  /// module_sha256; a missing, unlisted or modified file -> ManifestError naming it.
  void VerifyFiles(const std::string& dir) const;
  /// The first 12 hex digits of a SHA-256 over the sorted (file, digest) pairs: names the
  /// exact weights of the bundle.
  std::string WeightsDigest() const;
};

/// An export directory loaded for evaluation: manifest.json read, exported from `environment`,
/// every role's layout validated against `probe` (an instance of that environment) and every
/// module file's hash verified. Any failure is std::invalid_argument naming the file.
ExportManifest LoadExportForEvaluation(const std::string& dir, const std::string& environment,
                                       const MultiAgentEnv& probe);

/// The experiment YAML that runs an export's modules frozen on one instance of `environment`
/// (roles the export lacks: baseline).
std::string FrozenExportExperimentYaml(const ExportManifest& manifest, const std::string& dir,
                                       const std::string& name, const std::string& environment);

/// SHA-256 (hex) of a file's bytes; std::runtime_error if it cannot be read.
std::string FileSha256(const std::string& path);

}  // namespace loantwin
