#include "core/collective.h"

#include <fmt/format.h>

#include <cstring>

namespace loantwin {

std::vector<std::string> Collective::AllGather(const std::string& mine) {
  const int w = world_size();
  std::vector<int64_t> sizes(w, 0);
  sizes[rank()] = static_cast<int64_t>(mine.size());
  AllReduceSum(sizes.data(), sizes.size());
  std::vector<std::string> out(w);
  for (int r = 0; r < w; ++r) {
    out[r].resize(static_cast<size_t>(sizes[r]));
    if (r == rank()) out[r] = mine;
    if (sizes[r] > 0) Broadcast(out[r].data(), out[r].size(), r);
  }
  return out;
}

void Collective::AllReduceMean(float* data, size_t n) {
  AllReduceSum(data, n);
  const float inv = 1.0f / static_cast<float>(world_size());
  for (size_t i = 0; i < n; ++i) data[i] *= inv;
}

void Collective::CheckSame(uint64_t value, const std::string& what) {
  std::vector<int64_t> all(world_size(), 0);
  int64_t v;
  std::memcpy(&v, &value, sizeof v);
  all[rank()] = v;
  AllReduceSum(all.data(), all.size());
  bool same = true;
  std::string listed;
  for (int r = 0; r < world_size(); ++r) {
    same &= all[r] == all[0];
    uint64_t u;
    std::memcpy(&u, &all[r], sizeof u);
    listed += fmt::format("{}rank {}: {:016x}", r ? ", " : "", r, u);
  }
  if (!same) throw CollectiveError(fmt::format("ranks differ in {} ({})", what, listed));
}

}  // namespace loantwin
