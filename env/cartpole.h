#pragma once
// CartPole-v1 (Barto, Sutton & Anderson 1983; Gymnasium's constants) on the multi-agent API
// with one role, "agent": observation Box(4) [x, x_dot, theta, theta_dot], Discrete(2) action
// (0 = push left, 1 = push right), reward 1 per step, terminated when |x| > 2.4 or
// |theta| > 12 degrees, truncated at 500 steps. The correctness benchmark for every algorithm.

#include <vector>

#include "env/multi_agent_env.h"

namespace loantwin {

struct CartPoleConfig {
  double gravity = 9.8;                                        ///< m/s^2
  double cart_mass = 1.0;                                      ///< kg
  double pole_mass = 0.1;                                      ///< kg
  double pole_half_length = 0.5;                               ///< m (half the pole's length)
  double force = 10.0;                                         ///< N per push
  double tau = 0.02;                                           ///< s per step (explicit Euler)
  double theta_limit = 12 * 2 * 3.14159265358979323846 / 360;  ///< rad
  double x_limit = 2.4;                                        ///< m
  double reset_noise = 0.05;                                   ///< initial state ~ U(-noise, noise)
  int max_episode_steps = 500;
};

class CartPoleEnv : public MultiAgentEnv {
 public:
  CartPoleEnv(const EnvOptions& options, const CartPoleConfig& config = {});

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
