// Writes a trajectory of one environment role as raw bytes, for the Python conformance test
// (python/tests/test_vector.py) to compare with the Python module stepping the same seed.
//
//   env_dump <env> <role> <num_envs> <seed> <steps> <config yaml text or ""> <out file>
//
// Role <role> takes, in instance i at step t, the ((t + i) mod k)-th allowed value of each
// component (k = allowed values); the roles above it decide by their fallbacks before its
// observation is read. Per step (reset first): observations float32 [N, d], masks uint8
// [N, w]; then after the step: rewards float32 [N], terminated, truncated uint8 [N], final
// observations float32 [N, d].

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/yaml_reader.h"
#include "env/env_registry.h"

using namespace loantwin;

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: env_dump env role num_envs seed steps config out\n");
    return 2;
  }
  try {
    EnvOptions o;
    o.num_envs = std::stoi(argv[3]);
    o.seed = std::stoull(argv[4]);
    const int steps = std::stoi(argv[5]);
    std::unique_ptr<YamlValue> config;
    if (std::strlen(argv[6]) > 0)
      config = std::make_unique<YamlValue>(YamlValue::LoadString(argv[6], "<config>"));
    auto env = MakeEnv(argv[1], o, config.get());
    const int r = env->FindRole(argv[2]);
    if (r < 0) throw std::invalid_argument(std::string("no role ") + argv[2]);
    std::FILE* f = std::fopen(argv[7], "wb");
    if (!f) throw std::runtime_error(std::string("cannot write ") + argv[7]);
    const int n = env->num_envs(), d = env->role(r).obs_dim();
    const MultiDiscrete& md = env->role(r).action_space.dims();
    const int dims = md.size(), w = md.mask_width();
    std::vector<int32_t> actions(static_cast<size_t>(n) * dims);
    env->Reset();
    for (int t = 0; t < steps; ++t) {
      for (int above = 0; above < r; ++above) env->Act(above, nullptr);
      std::fwrite(env->observations(r), sizeof(float), static_cast<size_t>(n) * d, f);
      std::fwrite(env->action_masks(r), 1, static_cast<size_t>(n) * w, f);
      for (int i = 0; i < n; ++i)
        for (int c = 0; c < dims; ++c) {
          const uint8_t* m = env->action_masks(r) + static_cast<size_t>(i) * w + md.mask_offset(c);
          std::vector<int> allowed;
          for (int v = 0; v < md.nvec()[c]; ++v)
            if (m[v]) allowed.push_back(v);
          actions[static_cast<size_t>(i) * dims + c] = allowed[(t + i) % allowed.size()];
        }
      env->Act(r, actions.data());
      env->Step();
      std::fwrite(env->rewards(r), sizeof(float), n, f);
      std::fwrite(env->terminated(), 1, n, f);
      std::fwrite(env->truncated(), 1, n, f);
      std::fwrite(env->final_observations(r), sizeof(float), static_cast<size_t>(n) * d, f);
    }
    std::fclose(f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "env_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
