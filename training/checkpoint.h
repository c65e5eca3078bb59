#pragma once
// Checkpoint files of a run: <run>/checkpoints/step_<global step>.pt, written atomically
// (core/atomic_file.h: temporary file, fsync, rename), keeping the newest K.

#include <string>
#include <vector>

namespace loantwin {

class Trainer;

class CheckpointManager {
 public:
  CheckpointManager(std::string dir, int keep);
  /// Writes the trainer's state; returns the path. Older checkpoints beyond `keep` are removed.
  /// Distributed: every rank calls it; rank 0 writes every rank's state into one file (the
  /// others return "").
  std::string Save(const Trainer& trainer);
  /// Newest checkpoint path, or "" if none.
  std::string Latest() const;
  std::vector<std::string> List() const;  ///< oldest first

 private:
  std::string dir_;
  int keep_;
};

/// Restores a trainer from a checkpoint file (same experiment configuration); a file that is
/// not a checkpoint or does not fit the trainer's agents -> std::runtime_error naming it.
/// Distributed (the trainer has a group): rank 0 reads the file and every rank restores its own
/// state from it. `resume` (continuing training) from a checkpoint written by another number of
/// ranks: Trainer::LoadResharded (PPO; other algorithms: std::invalid_argument, which
/// LoadNewestReadableCheckpoint does not pass over). Evaluation and export read rank 0's state
/// from any.
void LoadCheckpoint(Trainer& trainer, const std::string& path, bool resume = false);
/// What LoadNewestReadableCheckpoint restored, and the newer checkpoints it had to pass over.
struct RestoredCheckpoint {
  std::string path;
  std::vector<std::string> skipped;  ///< "<path>: <why it did not load>", newest first
};
/// Restores the newest checkpoint of `dir` that loads; a newer one that does not (torn by a
/// crash, damaged on disk) is passed over and listed. None, or none that loads ->
/// std::runtime_error with the newest one's reason (std::invalid_argument when there is none).
RestoredCheckpoint LoadNewestReadableCheckpoint(Trainer& trainer, const std::string& dir,
                                                bool resume = false);
/// LoadNewestReadableCheckpoint of <run_dir>/checkpoints, warning about any passed over;
/// returns its path; none -> std::invalid_argument "<run_dir>: no checkpoint to <purpose>".
std::string LoadLatestCheckpoint(Trainer& trainer, const std::string& run_dir,
                                 const std::string& purpose);

}  // namespace loantwin
