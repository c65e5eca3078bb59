#pragma once
// CartPole-v1 (Barto, Sutton & Anderson 1983; Gymnasium's constants) on the multi-agent API
// with one role, "agent": observation Box(4) [x, x_dot, theta, theta_dot], Discrete(2) action
// (0 = push left, 1 = push right), reward 1 per step, terminated when |x| > 2.4 or
// |theta| > 12 degrees, truncated at 500 steps. The correctness benchmark for every algorithm.

#include <string>
#include <vector>

#include "env/multi_agent_env.h"

namespace loantwin {

class YamlValue;

struct CartPoleConfig {
  double gravity = 9.8;
  double cart_mass = 1.0;
  double pole_mass = 0.1;
  double pole_half_length = 0.5;
  double force = 10.0;
  double tau = 0.02;
  double theta_limit = 12 * 2 * 3.14159265358979323846 / 360;
  double x_limit = 2.4;
  double reset_noise = 0.05;
  int max_episode_steps = 500;

  /// Strict parse of env.config (docs/environment.md); ConfigError naming file, line and key.
  static CartPoleConfig Parse(const YamlValue& value);
  /// Every field, defaults included, as a YAML mapping.
  std::string ToYaml() const;
};

/// The fields of CartPoleConfig, listed once (core/config_fields.h).
template <typename V>
void VisitFields(CartPoleConfig& c, V&& v) {
  v("gravity", c.gravity, 0.0, 100.0, "m/s^2");
  v("cart_mass", c.cart_mass, 1e-6, 1e3, "kg");
  v("pole_mass", c.pole_mass, 1e-6, 1e3, "kg");
  v("pole_half_length", c.pole_half_length, 1e-6, 1e3, "m (half the pole's length)");
  v("force", c.force, 0.0, 1e4, "N per push");
  v("tau", c.tau, 1e-6, 1.0, "s per step (explicit Euler)");
  v("x_limit", c.x_limit, 1e-6, 1e3, "m: terminated beyond +-x_limit");
  v("theta_limit", c.theta_limit, 1e-6, 3.2, "rad: terminated beyond +-theta_limit");
  v("reset_noise", c.reset_noise, 0.0, 1.0, "initial state ~ U(-noise, noise)");
  v("max_episode_steps", c.max_episode_steps, 1, 1000000, "truncation");
}

class CartPoleEnv : public MultiAgentEnv {
 public:
  CartPoleEnv(const EnvOptions& options, const CartPoleConfig& config = {});
  std::string ConfigYaml() const override { return c_.ToYaml(); }

 protected:
  void ResetInstance(int i, uint64_t episode) override;
  void StepInstances(int begin, int end) override;
  void WriteMasks(int role, int begin, int end) override;
  /// Baseline: push towards the side the pole falls to (theta + 0.5 theta_dot).
  void BaselineActions(int role, int begin, int end, int32_t* out) override;
  void SaveInstances(StateWriter& w) const override;
  void LoadInstances(StateReader& r) override;

 private:
  void WriteObs(int i);
  CartPoleConfig c_;
  std::vector<double> x_, x_dot_, theta_, theta_dot_;
};

}  // namespace loantwin
