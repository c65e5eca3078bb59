#include "training/checkpoint.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "core/atomic_file.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin {

CheckpointManager::CheckpointManager(std::string dir, int keep)
    : dir_(std::move(dir)), keep_(keep) {}

std::vector<std::string> CheckpointManager::List() const {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && e.path().extension() == ".pt")
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());  // zero-padded step numbers sort in order
  return files;
}

std::string CheckpointManager::Latest() const {
  const auto files = List();
  return files.empty() ? "" : files.back();
}

std::string CheckpointManager::Save(const Trainer& trainer) {
  fs::create_directories(dir_);
  const std::string path = fmt::format("{}/step_{:012d}.pt", dir_, trainer.global_step());
  torch::serialize::OutputArchive archive;
  trainer.Save(archive);
  WriteFileAtomically(path, [&](std::ostream& out) { archive.save_to(out); });
  auto files = List();
  while (static_cast<int>(files.size()) > keep_) {
    fs::remove(files.front());
    files.erase(files.begin());
  }
  return path;
}

void LoadCheckpoint(Trainer& trainer, const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        fmt::format("{}: not a loantwin checkpoint ({})", path, e.what_without_backtrace()));
  }
  try {
    trainer.Load(archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format(
        "{}: does not load into this run's agents (written by another loantwin version, or the "
        "experiment was edited): {}",
        path, e.what_without_backtrace()));
  }
}

RestoredCheckpoint LoadNewestReadableCheckpoint(Trainer& trainer, const std::string& dir) {
  const auto files = CheckpointManager(dir, 1 << 30).List();
  if (files.empty()) throw std::invalid_argument(dir + " has no checkpoint");
  RestoredCheckpoint r;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      LoadCheckpoint(trainer, *it);
      r.path = *it;
      return r;
    } catch (const std::runtime_error& e) {
      // An older checkpoint restores every part of the trainer, so a partial load of a
      // damaged newer one leaves nothing behind.
      r.skipped.push_back(e.what());
    }
  }
  throw std::runtime_error(
      fmt::format("no checkpoint of {} loads; the newest: {}", dir, r.skipped.front()));
}

std::string LoadLatestCheckpoint(Trainer& trainer, const std::string& run_dir,
                                 const std::string& purpose) {
  if (CheckpointManager(run_dir + "/checkpoints", 1000).Latest().empty())
    throw std::invalid_argument(run_dir + ": no checkpoint to " + purpose +
                                " (checkpoints/ is empty)");
  const RestoredCheckpoint r = LoadNewestReadableCheckpoint(trainer, run_dir + "/checkpoints");
  for (const auto& s : r.skipped) spdlog::warn("passed over an unreadable checkpoint: {}", s);
  if (!r.skipped.empty()) spdlog::warn("using the previous checkpoint {}", r.path);
  return r.path;
}

}  // namespace loantwin
