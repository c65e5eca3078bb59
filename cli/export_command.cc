// `loantwin export <run dir> --out <dir>`: TorchScript policies + manifest (docs/export.md).

#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin::cli {

Runner RegisterExport(CLI::App& app) {
  struct Args {
    std::string run_dir, out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd =
      app.add_subcommand("export", "Export a run's trained roles as TorchScript + manifest.json");
  cmd->add_option("run_dir", a->run_dir, "run directory written by loantwin train")->required();
  cmd->add_option("--out", a->out, "output directory (default: <run dir>/export)");
  return [a] {
    if (!fs::is_regular_file(a->run_dir + "/config.yaml"))
      throw std::invalid_argument(a->run_dir + ": not a run directory (no config.yaml)");
    Trainer trainer(ExperimentConfig::Load(a->run_dir + "/config.yaml"));
    const std::string latest = LoadLatestCheckpoint(trainer, a->run_dir, "export");
    const std::string out = a->out.empty() ? a->run_dir + "/export" : a->out;
    for (const auto& f : ExportRun(trainer, a->run_dir, latest, out)) fmt::print("wrote {}\n", f);
    return 0;
  };
}

}  // namespace loantwin::cli
