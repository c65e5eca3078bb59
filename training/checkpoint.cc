#include "training/checkpoint.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "agents/module_util.h"
#include "core/atomic_file.h"
#include "core/collective.h"
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
  torch::serialize::OutputArchive archive;
  trainer.Save(archive);
  Collective* group = trainer.group();
  if (group != nullptr && group->world_size() > 1) {
    // Rank 0 writes one file: its own state at the top (what evaluate and export read; the
    // ranks' agents are identical) and every other rank's whole state, for an exact resume.
    if (group->rank() != 0) {
      std::ostringstream bytes;
      archive.save_to(bytes);
      const std::string mine = bytes.str();
      int64_t size = static_cast<int64_t>(mine.size());
      group->Send(&size, sizeof size, 0, 1);
      group->Send(mine.data(), mine.size(), 0, 2);
      return "";
    }
    for (int r = 1; r < group->world_size(); ++r) {
      int64_t size = 0;
      group->Recv(&size, sizeof size, r, 1);
      std::string theirs(static_cast<size_t>(size), '\0');
      group->Recv(theirs.data(), theirs.size(), r, 2);
      WriteStateBytes(archive, fmt::format("distributed/rank/{}", r), theirs);
    }
  }
  archive.write("distributed/world_size",
                torch::tensor(int64_t{group != nullptr ? group->world_size() : 1}));
  fs::create_directories(dir_);
  const std::string path = fmt::format("{}/step_{:012d}.pt", dir_, trainer.global_step());
  WriteFileAtomically(path, [&](std::ostream& out) { archive.save_to(out); });
  auto files = List();
  while (static_cast<int>(files.size()) > keep_) {
    fs::remove(files.front());
    files.erase(files.begin());
  }
  return path;
}

int CheckpointWorldSize(torch::serialize::InputArchive& archive) {
  torch::Tensor t;
  return archive.try_read("distributed/world_size", t) ? static_cast<int>(t.item<int64_t>()) : 1;
}

void LoadCheckpoint(Trainer& trainer, const std::string& path, bool resume) {
  torch::serialize::InputArchive archive;
  Collective* group = trainer.group();
  const int world = group != nullptr ? group->world_size() : 1;
  try {
    if (world > 1) {
      // Rank 0 reads the file and hands its bytes to every rank (no shared disk needed).
      std::string file;
      int64_t size = -1;
      if (group->rank() == 0) {
        std::ifstream in(path, std::ios::binary);
        if (in) file.assign(std::istreambuf_iterator<char>(in), {});
        size = in ? static_cast<int64_t>(file.size()) : -1;
      }
      group->Broadcast(&size, sizeof size, 0);
      if (size < 0) throw std::runtime_error(path + ": cannot be read");
      file.resize(static_cast<size_t>(size));
      group->Broadcast(file.data(), file.size(), 0);
      archive.load_from(file.data(), file.size());
    } else {
      archive.load_from(path);
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        fmt::format("{}: not a loantwin checkpoint ({})", path, e.what_without_backtrace()));
  }
  const int written_by = CheckpointWorldSize(archive);
  const int rank = group != nullptr ? group->rank() : 0;
  try {
    if (resume && written_by != world) {
      // Another number of ranks (PPO only; Trainer::LoadResharded): ranks below written_by
      // continue their shards, new ranks start theirs from rank 0's agents.
      if (rank == 0) {
        const auto ranks = [](int first, int last) {
          return first == last ? fmt::format("rank {}", first)
                               : fmt::format("ranks {}-{}", first, last);
        };
        spdlog::info(
            "{}: written by a run of {} rank{}, resumed with {}: the rollouts in progress are "
            "dropped; environments continued: {}{}",
            path, written_by, written_by == 1 ? "" : "s", world,
            ranks(0, std::min(written_by, world) - 1),
            world > written_by ? "; new environments: " + ranks(written_by, world - 1)
                               : std::string());
        trainer.LoadResharded(archive, &archive, written_by);
      } else if (rank < written_by) {
        const std::string mine = ReadStateBytes(archive, fmt::format("distributed/rank/{}", rank));
        torch::serialize::InputArchive own;
        own.load_from(mine.data(), mine.size());
        trainer.LoadResharded(archive, &own, written_by);
      } else {
        trainer.LoadResharded(archive, nullptr, written_by);
      }
      return;
    }
    if (world > 1 && group->rank() > 0) {
      const std::string mine =
          ReadStateBytes(archive, fmt::format("distributed/rank/{}", group->rank()));
      torch::serialize::InputArchive own;
      own.load_from(mine.data(), mine.size());
      trainer.Load(own);
      return;
    }
    trainer.Load(archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format(
        "{}: does not load into this run's agents (written by another loantwin version, or the "
        "experiment was edited): {}",
        path, e.what_without_backtrace()));
  }
}

RestoredCheckpoint LoadNewestReadableCheckpoint(Trainer& trainer, const std::string& dir,
                                                bool resume) {
  auto files = CheckpointManager(dir, 1 << 30).List();
  Collective* group = trainer.group();
  if (group != nullptr && group->world_size() > 1) {
    // Rank 0's list: the files are on its disk (LoadCheckpoint hands their bytes around).
    std::string joined;
    for (const auto& f : files) joined += f + '\n';
    joined = group->AllGather(group->rank() == 0 ? joined : std::string())[0];
    files.clear();
    std::istringstream lines(joined);
    for (std::string f; std::getline(lines, f);) files.push_back(f);
  }
  if (files.empty()) throw std::invalid_argument(dir + " has no checkpoint");
  RestoredCheckpoint r;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      LoadCheckpoint(trainer, *it, resume);
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
