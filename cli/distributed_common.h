#pragma once
// --distributed and --dist-timeout for the commands that scale out (train, evaluate;
// docs/distributed.md), and the process group they join.

#include <CLI/CLI.hpp>
#include <string>

#include "core/collective.h"

namespace loantwin::cli {

struct DistributedArgs {
  bool enabled = false;
  double timeout_s = 300;
};

void AddDistributedOptions(CLI::App* cmd, DistributedArgs& args);

/// Joins the process group from torchrun's environment when --distributed is given (null
/// otherwise) and tags this process's log lines with its rank. The group lives until
/// LeaveProcessGroup (main calls it after the command, having told the group of a failure).
Collective* JoinProcessGroup(const DistributedArgs& args);

/// Tells the other ranks of the joined group (if any) why this one fails; main's error path.
void ReportFailure(const std::string& message);
/// Closes the joined group, if any.
void LeaveProcessGroup();

}  // namespace loantwin::cli
