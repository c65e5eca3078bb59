#include "agents/agent_registry.h"

#include "agents/dqn.h"
#include "agents/muzero.h"
#include "agents/ppo.h"

namespace loantwin {

Registry<AgentAlgorithm>& AgentAlgorithms() {
  // One line per algorithm (built-ins first; RegisterAgent-style additions go through Add).
  static Registry<AgentAlgorithm> registry("agent algorithm", {
                                                                  {"ppo", PpoAlgorithm()},
                                                                  {"dqn", DqnAlgorithm()},
                                                                  {"muzero", MuZeroAlgorithm()},
                                                              });
  return registry;
}

}  // namespace loantwin
