#pragma once
// Drift monitoring of a deployed policy (docs/digital-twin.md, "Drift monitoring"): the decision
// engine's audit log against the distribution the policy acts on in the twin - per-feature
// population stability, the share of requests outside the reference range, and the shift of
// the decision mix - with early-warning and alert thresholds.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loantwin {

struct MonitorThresholds {
  double psi_warn = 0.10, psi_alert = 0.25;          ///< per feature (credit-scoring convention)
  double outside_warn = 0.01, outside_alert = 0.05;  ///< per feature: share outside the range
  double mix_warn = 0.05, mix_alert = 0.10;  ///< per action component: total variation distance
};

struct MonitorOptions {
  std::string audit_log;
  std::string reference;    ///< a run directory or an export directory (StressPolicy::Load)
  std::string institution;  ///< "" = the policy's own (else cu_small)
  std::vector<std::string> scenarios = {"steady_state", "mild_recession", "severe_recession"};
  int paths = 32, months = 36;
  uint64_t seed = 1;
  int min_requests = 50;  ///< a role with fewer live requests is reported, not judged
  MonitorThresholds thresholds;
};

/// One role's observations and decisions: rows of features and of action indices.
struct RoleSample {
  std::vector<std::string> features, actions;
  std::vector<float> obs;     ///< [rows x features]
  std::vector<int32_t> acts;  ///< [rows x actions]
  int mask_width = 0;
  std::vector<uint8_t> masks;  ///< reference only: [rows x mask_width], the masks it acted under
  int64_t rows = 0;
};

/// The reference: each role's observations and the policy's decisions on them, from
/// `paths` x `months` of every scenario (the roles the policy does not decide act on their
/// baselines and are recorded too).
std::map<std::string, RoleSample> CollectReference(const MonitorOptions& options);

/// The audit log's role decisions (routes /v1/roles/<role>/decide and
/// /v1/tenants/<t>/roles/<role>/decide), with feature and action columns in `layout`'s order.
/// Other routes are counted in `skipped`. Malformed lines are errors naming the line.
std::map<std::string, RoleSample> ReadAuditDecisions(
    const std::string& path, const std::map<std::string, RoleSample>& layout, int64_t* skipped);

struct FeatureDrift {
  std::string name;
  double psi = 0, outside = 0;  ///< outside: share of live rows beyond the reference min / max
  double ref_min = 0, ref_max = 0, live_mean = 0, ref_mean = 0;
  std::string level;  ///< ok | warn | alert
};
struct ActionDrift {
  std::string name;
  std::vector<double> reference, live;  ///< share per action index
  double tv = 0;                        ///< total variation distance
  std::string level;
};
struct RoleDrift {
  std::string role;
  int64_t live_rows = 0, reference_rows = 0;
  double outside_any = 0;  ///< share of live rows with any feature outside the range
  std::vector<FeatureDrift> features;
  std::vector<ActionDrift> actions;
  std::string level;  ///< ok | warn | alert | too few requests
};
struct MonitorResult {
  std::vector<RoleDrift> roles;
  int64_t skipped_lines = 0;
  std::string level;  ///< the worst role's
};

MonitorResult RunMonitor(const MonitorOptions& options);
/// Compares given samples (tests, and RunMonitor's core).
RoleDrift CompareRole(const std::string& role, const RoleSample& reference, const RoleSample& live,
                      const MonitorOptions& options);

}  // namespace loantwin
