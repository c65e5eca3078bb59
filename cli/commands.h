#pragma once
// Subcommands of the `loantwin` CLI. Each registers its options and returns the function that
// runs it (exit code).

#include <CLI/CLI.hpp>
#include <functional>

namespace loantwin::cli {

using Runner = std::function<int()>;

Runner RegisterSimulate(CLI::App& app);
Runner RegisterList(CLI::App& app);
Runner RegisterCalibrate(CLI::App& app);
Runner RegisterTrain(CLI::App& app);
Runner RegisterEvaluate(CLI::App& app);
Runner RegisterExport(CLI::App& app);

}  // namespace loantwin::cli
