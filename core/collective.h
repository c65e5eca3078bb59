#pragma once
// The process group a distributed run's ranks talk through (docs/distributed.md): collectives
// over plain buffers, so the libraries that use them (the trainer's agents, stress evaluation)
// need neither LibTorch's c10d nor a network. distributed/ implements it on c10d's Gloo backend;
// a run on one process has no group (a null pointer), never a group of one pretending.
//
// Every rank must make the same calls in the same order (as with torch.distributed). A failed
// or timed-out collective throws CollectiveError naming the rank(s) that stopped answering.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace loantwin {

/// A collective failed: a rank died, hung past the timeout or the connection broke.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  /// In-place element-wise sums over the ranks: every rank ends with the same values, reduced
  /// in the same order on every rank (bit-identical results everywhere).
  virtual void AllReduceSum(float* data, size_t n) = 0;
  virtual void AllReduceSum(double* data, size_t n) = 0;
  virtual void AllReduceSum(int64_t* data, size_t n) = 0;
  /// Root's bytes are copied into every rank's buffer (the same size on every rank).
  virtual void Broadcast(void* data, size_t bytes, int root) = 0;
  /// Point to point: a Send is matched by the Recv of the same tag on `peer`, in order.
  virtual void Send(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual void Recv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual void Barrier() = 0;

  /// What the all-reduces of this group have cost so far (bench/, docs/distributed.md).
  struct Stats {
    int64_t all_reduces = 0;
    int64_t all_reduce_bytes = 0;  ///< one rank's payload, summed over the calls
    double all_reduce_seconds = 0;
  };
  virtual Stats stats() const = 0;

  /// Every rank's byte string, in rank order, on every rank (sizes may differ).
  std::vector<std::string> AllGather(const std::string& mine);
  /// The mean in place (a sum, then divided by the world size).
  void AllReduceMean(float* data, size_t n);
  /// Throws CollectiveError on every rank unless every rank passed the same value (what, e.g.
  /// "parameter hash", names it in the message, with each rank's value).
  void CheckSame(uint64_t value, const std::string& what);
};

}  // namespace loantwin
