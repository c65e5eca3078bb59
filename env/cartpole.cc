#include "env/cartpole.h"

#include <cmath>

#include "core/config_fields.h"
#include "core/counter_rng.h"

namespace loantwin {

CartPoleConfig CartPoleConfig::Parse(const YamlValue& value) {
  CartPoleConfig c;
  ReadFields(value, c);
  return c;
}

std::string CartPoleConfig::ToYaml() const {
  return FieldsToYaml(*this);
}
namespace {

RoleSpec CartPoleRole(const CartPoleConfig& c) {
  RoleSpec r;
  r.name = "agent";
  r.features.Add("cart_position", static_cast<float>(-2 * c.x_limit),
                 static_cast<float>(2 * c.x_limit));
  r.features.Add("cart_velocity");
  r.features.Add("pole_angle", static_cast<float>(-2 * c.theta_limit),
                 static_cast<float>(2 * c.theta_limit));
  r.features.Add("pole_angular_velocity");
  r.action_space = Discrete(2);
  r.action_dim_names = {"push"};
  r.action_meanings = {{"left", "right"}};
  r.objectives = {"survival"};
  return r;
}

}  // namespace

CartPoleEnv::CartPoleEnv(const EnvOptions& options, const CartPoleConfig& config)
    : MultiAgentEnv("cartpole", {CartPoleRole(config)}, options, config.max_episode_steps),
      c_(config) {
  const size_t n = static_cast<size_t>(num_envs());
  x_.assign(n, 0), x_dot_.assign(n, 0), theta_.assign(n, 0), theta_dot_.assign(n, 0);
}

void CartPoleEnv::WriteObs(int i) {
  float* o = obs_row(0, i);
  o[0] = static_cast<float>(x_[i]);
  o[1] = static_cast<float>(x_dot_[i]);
  o[2] = static_cast<float>(theta_[i]);
  o[3] = static_cast<float>(theta_dot_[i]);
}

void CartPoleEnv::ResetInstance(int i, uint64_t episode) {
  CounterRng rng(DeriveKey(DeriveKey(DeriveKey(seed(), 0x63617274), instance_id(i)), episode));
  auto u = [&] { return c_.reset_noise * (2 * rng.Uniform() - 1); };
  x_[i] = u(), x_dot_[i] = u(), theta_[i] = u(), theta_dot_[i] = u();
  WriteObs(i);
}

void CartPoleEnv::StepInstances(int begin, int end) {
  const double total_mass = c_.cart_mass + c_.pole_mass;
  const double pml = c_.pole_mass * c_.pole_half_length;
  for (int i = begin; i < end; ++i) {
    const double force = action_row(0, i)[0] == 1 ? c_.force : -c_.force;
    const double cos_t = std::cos(theta_[i]), sin_t = std::sin(theta_[i]);
    const double temp = (force + pml * theta_dot_[i] * theta_dot_[i] * sin_t) / total_mass;
    const double theta_acc =
        (c_.gravity * sin_t - cos_t * temp) /
        (c_.pole_half_length * (4.0 / 3.0 - c_.pole_mass * cos_t * cos_t / total_mass));
    const double x_acc = temp - pml * theta_acc * cos_t / total_mass;
    x_[i] += c_.tau * x_dot_[i];
    x_dot_[i] += c_.tau * x_acc;
    theta_[i] += c_.tau * theta_dot_[i];
    theta_dot_[i] += c_.tau * theta_acc;
    WriteObs(i);
    reward_vec_row(0, i)[0] = 1.0f;
    set_reward(0, i, 1.0f);
    if (std::abs(x_[i]) > c_.x_limit || std::abs(theta_[i]) > c_.theta_limit) set_terminated(i);
  }
}

void CartPoleEnv::WriteMasks(int, int begin, int end) {
  for (int i = begin; i < end; ++i) mask_row(0, i)[0] = mask_row(0, i)[1] = 1;
}

void CartPoleEnv::BaselineActions(int, int begin, int end, int32_t* out) {
  for (int i = begin; i < end; ++i) out[i] = theta_[i] + 0.5 * theta_dot_[i] > 0 ? 1 : 0;
}

void CartPoleEnv::SaveInstances(StateWriter& w) const {
  w.Tag("cartpole");
  w.PutVector(x_), w.PutVector(x_dot_), w.PutVector(theta_), w.PutVector(theta_dot_);
}

void CartPoleEnv::LoadInstances(StateReader& r) {
  r.Tag("cartpole");
  r.GetVector(&x_), r.GetVector(&x_dot_), r.GetVector(&theta_), r.GetVector(&theta_dot_);
}

}  // namespace loantwin
