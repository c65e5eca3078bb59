// Driver for counting the multi-agent layer's overhead with callgrind (docs/performance.md):
//   valgrind --tool=callgrind ./build/bin/marl_overhead_driver marl   (five-role API, baselines)
//   valgrind --tool=callgrind ./build/bin/marl_overhead_driver bare   (TwinBatch, fixed levers)
// 16 cu_small instances, 60 months, one thread.

#include <cstring>
#include <vector>

#include "env/twin/twin_batch.h"
#include "env/twin_env.h"
using namespace loantwin;
int main(int argc, char** argv) {
  const bool marl = argc > 1 && std::strcmp(argv[1], "marl") == 0;
  const int envs = 16, steps = 60;
  if (marl) {
    EnvOptions o;
    o.num_envs = envs;
    o.num_threads = 1;
    o.seed = 1;
    TwinEnvConfig c;
    c.institution = "cu_small";
    c.horizon_months = 100000;
    TwinEnv env(o, c);
    env.Reset();
    for (int s = 0; s < steps; ++s) env.Step();
  } else {
    auto inst = LoadInstitution("cu_small");
    TwinBatchOptions o;
    o.num_envs = envs;
    o.num_threads = 1;
    o.seed = 1;
    TwinBatch env(inst, LoadScenario("steady_state"), o);
    std::vector<Levers> l{DefaultLevers(*inst)};
    for (int s = 0; s < steps; ++s) env.Step(l);
  }
}
