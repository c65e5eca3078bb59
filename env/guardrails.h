#pragma once
// Guardrails (docs/training.md, "Guardrails"): declarative hard limits evaluated on a role's
// observation that mask actions before any policy acts. A rule fires when every condition of its
// `when` holds on the observed state (feature values in their raw units: the observation
// de-normalised with the feature's center and scale); it then restricts the action components its
// `limit` names to values at most / at least a bound or the decision in force ("current", read
// from the observation's self/<component> feature). The same compiled rules run in training (the
// environment's masks), in stress evaluation and in the decision engine (the bundle's manifest
// carries them), so one observation gets one masked decision everywhere.
//
// A guardrail never leaves a component without an allowed action: where its bound and the mask
// it is given leave nothing, the allowed action nearest the bound stays allowed.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace YAML {
class Emitter;
}

namespace loantwin {

class YamlValue;
struct RoleSpec;

struct GuardrailCondition {
  std::string feature;          ///< an observation feature name
  std::optional<double> below;  ///< holds when the raw value < below
  std::optional<double> above;  ///< holds when the raw value > above
};

struct GuardrailLimit {
  std::string actions;             ///< an action component name, or a pattern with '*' ("budget/*")
  std::optional<double> max, min;  ///< bounds on the component's value
  bool max_current = false;        ///< max: the value in force (no increase)
  bool min_current = false;        ///< min: the value in force (no decrease)
};

struct GuardrailRule {
  std::string name;
  std::vector<std::string> roles;        ///< empty: every role with a component a limit names
  std::vector<GuardrailCondition> when;  ///< all must hold; empty: always
  std::vector<GuardrailLimit> limits;

  /// One item of `guardrails:` (ConfigError naming file, line and key).
  static GuardrailRule Parse(const YamlValue& node);
  void Write(YAML::Emitter& out) const;
  /// The rule as a JSON object (the manifest's form; Parse reads it back).
  std::string ToJson() const;
};

inline constexpr int kMaxGuardrails = 64;

/// The `guardrails:` list: each item parsed, names unique, at most kMaxGuardrails.
std::vector<GuardrailRule> ParseGuardrails(const YamlValue& list);
/// A JSON array of the rules (the manifest's `guardrails`).
std::string GuardrailsToJson(const std::vector<GuardrailRule>& rules);

/// A role as guardrails see it: its features with their scaling and its action components with
/// their mask blocks and values (from the environment's RoleSpec, or an export manifest).
struct GuardrailLayout {
  struct Component {
    std::string name;
    int size = 0, offset = 0;
    std::vector<double> values;  ///< per index; empty: the index itself
    double value(int v) const { return values.empty() ? v : values[v]; }
  };
  std::string role;
  std::vector<std::string> features;
  std::vector<double> centers, scales;
  std::vector<Component> components;
  int mask_width = 0;

  static GuardrailLayout Of(const RoleSpec& spec);
};

/// The rules that apply to one role, resolved against its layout.
class RoleGuardrails {
 public:
  RoleGuardrails() = default;
  /// std::invalid_argument naming the rule: an unknown feature in `when`, a `current` bound on
  /// a component without its self/ feature. Rules that do not apply to the role are skipped.
  static RoleGuardrails Compile(const std::vector<GuardrailRule>& rules,
                                const GuardrailLayout& layout);
  bool empty() const { return rules_.empty(); }
  /// Bit k set: rule k of the list applies to this role.
  uint64_t applies() const { return applies_; }
  /// Restricts `mask` by every rule whose conditions hold on `obs` (the role's normalised
  /// observation) and returns the rules that fired (bit k: rule k of the list).
  uint64_t Apply(const float* obs, uint8_t* mask) const;
  /// Moves every component of `action` the mask forbids to the allowed index with the nearest
  /// value (ties: the lower value): rule-based baselines act within the guardrails.
  void Project(const uint8_t* mask, int32_t* action) const;

 private:
  struct Condition {
    int feature = -1;
    double center = 0, scale = 1;
    std::optional<double> below, above;
  };
  struct Bound {
    int component = -1;
    int self_feature = -1;  ///< for `current` bounds
    std::optional<double> max, min;
    bool max_current = false, min_current = false;
  };
  struct Rule {
    int index = 0;
    std::vector<Condition> when;
    std::vector<Bound> bounds;
  };
  std::vector<Rule> rules_;
  std::vector<GuardrailLayout::Component> components_;
  uint64_t applies_ = 0;
};

/// Checks the rules against every role of an environment or bundle: each named role exists,
/// each limit matches a component of some role the rule applies to, each rule applies to at
/// least one role; then compiles them per role (std::invalid_argument naming the rule).
std::vector<RoleGuardrails> CompileGuardrails(const std::vector<GuardrailRule>& rules,
                                              const std::vector<GuardrailLayout>& layouts);

/// The names of the rules in `bits` ("a, b").
std::string GuardrailNames(const std::vector<GuardrailRule>& rules, uint64_t bits);

}  // namespace loantwin
