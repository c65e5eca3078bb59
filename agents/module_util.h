#pragma once
// Small helpers the agents share: copying one network's parameters into another of the same
// shape, and storing a StateWriter's bytes (rollouts, n-step queues, episode replay) in a
// checkpoint archive.

#include <dlfcn.h>
#include <torch/torch.h>

#include <string>

namespace loantwin {

/// OpenBLAS splits matrix products over its own (spinning) threads by default; the split
/// changes the summation order and so the numbers, and the spinning competes with the
/// environment and server threads. One thread keeps results bit-reproducible on any machine.
inline void PinBlasToOneThread() {
  using SetThreads = void (*)(int);
  for (const char* name : {"openblas_set_num_threads", "goto_set_num_threads"})
    if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, name))) fn(1);
}

/// to <- from, parameter by parameter (same architecture); no autograd history.
inline void CopyParameters(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  const auto src = from.parameters();
  auto dst = to.parameters();
  for (size_t k = 0; k < src.size(); ++k) dst[k].copy_(src[k]);
}

/// Writes raw bytes as a uint8 tensor under `key`.
inline void WriteStateBytes(torch::serialize::OutputArchive& archive, const std::string& key,
                            const std::string& bytes) {
  archive.write(key, torch::from_blob(const_cast<char*>(bytes.data()),
                                      {static_cast<int64_t>(bytes.size())}, torch::kUInt8)
                         .clone());
}

/// The bytes written by WriteStateBytes (a copy that outlives the archive).
inline std::string ReadStateBytes(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  t = t.contiguous();
  const char* p = reinterpret_cast<const char*>(t.data_ptr<uint8_t>());
  return std::string(p, p + t.numel());
}

}  // namespace loantwin
