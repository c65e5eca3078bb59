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
void LoadCheckpoint(Trainer& trainer, const std::string& path);
/// Restores the newest checkpoint of <run_dir>/checkpoints and returns its path; none ->
/// std::invalid_argument "<run_dir>: no checkpoint to <purpose>".
std::string LoadLatestCheckpoint(Trainer& trainer, const std::string& run_dir,
                                 const std::string& purpose);

}  // namespace loantwin
