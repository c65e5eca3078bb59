#include "distributed/process_group.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/config_error.h"

namespace loantwin {
namespace {

constexpr char kDocs[] = "docs/distributed.md";

int ParseInt(const std::function<const char*(const char*)>& get, const char* name, int lo, int hi,
             bool required, int fallback) {
  const char* v = get(name);
  if (v == nullptr || *v == '\0') {
    if (!required) return fallback;
    throw ConfigError(fmt::format(
        "{} is not set: a distributed run reads torchrun's environment (RANK, WORLD_SIZE, "
        "MASTER_ADDR, MASTER_PORT); start it with torchrun, srun or `loantwin launch` ({})",
        name, kDocs));
  }
  const std::string s(v);
  int out = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || end != s.data() + s.size() || out < lo || out > hi)
    throw ConfigError(
        fmt::format("{}='{}' is not a whole number from {} to {} ({})", name, s, lo, hi, kDocs));
  return out;
}

std::string StoreString(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}
std::vector<uint8_t> StoreBytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

c10::intrusive_ptr<c10d::Store> ConnectStore(const LaunchEnv& env,
                                             std::chrono::milliseconds timeout, bool host) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = host;
  o.numWorkers = c10::nullopt;
  o.waitWorkers = false;
  o.timeout = timeout;
  o.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  if (env.agent_store)
    store = c10::make_intrusive<c10d::PrefixStore>(
        fmt::format("/worker/attempt_{}", env.restart_count), store);
  return store;
}

class GlooGroup final : public Collective {
 public:
  GlooGroup(const LaunchEnv& env, const GroupOptions& options) : env_(env), options_(options) {
    const bool host = env.rank == 0 && !env.agent_store;
    try {
      store_ = ConnectStore(env, options.timeout, host);
      // The heartbeat talks through its own connection (a store client serves one thread).
      heartbeat_store_ = ConnectStore(env, options.timeout, false);
    } catch (const std::exception& e) {
      throw CollectiveError(fmt::format(
          "rank {}: cannot {} the rendezvous store at {}:{} within {} s ({}): is rank 0 "
          "running, and are MASTER_ADDR/MASTER_PORT right? ({})",
          env.rank, host ? "host" : "reach", env.master_addr, env.master_port,
          options.timeout.count() / 1000.0, FirstLine(e.what()), kDocs));
    }
    // Every rank must have been started with the same world size.
    store_->set(fmt::format("loantwin/world_size/{}", env.rank),
                StoreBytes(std::to_string(env.world_size)));
    heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
    if (env.rank == 0)
      store_->set("loantwin/world_size", StoreBytes(std::to_string(env.world_size)));
    try {
      store_->wait({"loantwin/world_size"}, options.timeout);
    } catch (const std::exception& e) {
      Stop();
      throw CollectiveError(fmt::format("rank {}: rank 0 did not join within {} s ({})", env.rank,
                                        options.timeout.count() / 1000.0, FirstLine(e.what())));
    }
    const std::string w0 = StoreString(store_->get("loantwin/world_size"));
    if (w0 != std::to_string(env.world_size)) {
      Stop();
      const std::string message = fmt::format(
          "rank {} was started with WORLD_SIZE={} but rank 0 with WORLD_SIZE={}: every rank of a "
          "run needs the same WORLD_SIZE",
          env.rank, env.world_size, w0);
      PublishFailure(message);
      throw CollectiveError(message);
    }
    store_->add("loantwin/joined", 1);  // after the check: a mismatched rank never counts
    WaitForAllRanks();
    auto gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      std::stringstream names(ifname);
      std::string name;
      while (std::getline(names, name, ','))
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    gloo->threads = 1;
    try {
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>("loantwin/gloo", store_);
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.world_size, gloo);
    } catch (const std::exception& e) {
      Stop();  // the heartbeat thread must not outlive a constructor that throws
      Fail("connecting the Gloo group", e);
    }
  }

  ~GlooGroup() override { Stop(); }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }

  void AllReduceSum(float* data, size_t n) override { AllReduce(data, n, torch::kFloat32); }
  void AllReduceSum(double* data, size_t n) override { AllReduce(data, n, torch::kFloat64); }
  void AllReduceSum(int64_t* data, size_t n) override { AllReduce(data, n, torch::kInt64); }

  void Broadcast(void* data, size_t bytes, int root) override {
    if (bytes == 0) return;
    std::vector<at::Tensor> t{Bytes(data, bytes)};
    if (Star()) {
      ++collectives_;
      if (env_.rank == root) {
        for (int r = 0; r < env_.world_size; ++r)
          if (r != root)
            Point(fmt::format("broadcast to rank {}", r),
                  [&] { return pg_->send(t, r, kBroadcastTag); });
      } else {
        Point(fmt::format("broadcast from rank {}", root),
              [&] { return pg_->recv(t, root, kBroadcastTag); });
      }
      return;
    }
    c10d::BroadcastOptions o;
    o.rootRank = root;
    Run("broadcast", [&] { return pg_->broadcast(t, o); });
  }
  void Send(const void* data, size_t bytes, int peer, int tag) override {
    if (bytes == 0) return;
    std::vector<at::Tensor> t{Bytes(const_cast<void*>(data), bytes)};
    Run(fmt::format("send to rank {}", peer), [&] { return pg_->send(t, peer, tag); });
  }
  void Recv(void* data, size_t bytes, int peer, int tag) override {
    if (bytes == 0) return;
    std::vector<at::Tensor> t{Bytes(data, bytes)};
    Run(fmt::format("receive from rank {}", peer), [&] { return pg_->recv(t, peer, tag); });
  }
  void Barrier() override {
    int64_t one = 1;
    AllReduce(&one, 1, torch::kInt64);
  }

  void PublishFailure(const std::string& message) {
    try {
      store_->set(fmt::format("loantwin/failed/{}", env_.rank), StoreBytes(message));
    } catch (const std::exception&) {
    }
  }

 private:
  /// The rendezvous: every rank has joined (then Gloo connects), or one reported a failure, or
  /// the timeout names the ranks that never joined.
  void WaitForAllRanks() {
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (true) {
      for (int r = 0; r < env_.world_size; ++r) {
        const std::string key = fmt::format("loantwin/failed/{}", r);
        if (r != env_.rank && store_->check({key})) {
          Stop();
          throw CollectiveError(fmt::format("rank {}: rank {} failed while joining: {}", env_.rank,
                                            r, StoreString(store_->get(key))));
        }
      }
      if (store_->add("loantwin/joined", 0) >= env_.world_size) return;
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string missing;
        for (int r = 0; r < env_.world_size; ++r)
          if (!store_->check({fmt::format("loantwin/world_size/{}", r)}))
            missing += fmt::format("{}{}", missing.empty() ? "" : ", ", r);
        Stop();
        throw CollectiveError(fmt::format(
            "rank {}: rank(s) {} did not join within {} s (not started, or started with another "
            "MASTER_ADDR/MASTER_PORT)",
            env_.rank, missing, options_.timeout.count() / 1000.0));
      }
      // A rendezvous poll, not a timing assumption: the deadline above bounds it.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  static std::string FirstLine(const std::string& s) {
    const size_t nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
  }
  static at::Tensor Bytes(void* data, size_t bytes) {
    return torch::from_blob(data, {static_cast<int64_t>(bytes)}, torch::kUInt8);
  }

  /// Small groups use a star of point-to-point messages through rank 0 rather than Gloo's ring
  /// collectives: on one machine a collective is latency-bound, and two messages per rank
  /// (about 0.1 ms on loopback) beat the ring's many chunked rounds (1-4 ms measured here,
  /// docs/distributed.md). Larger groups use Gloo's bandwidth-optimal ring.
  bool Star() const { return env_.world_size <= kStarMaxRanks; }

  Stats stats() const override { return stats_; }

  void AllReduce(void* data, size_t n, torch::ScalarType type) {
    if (n == 0) return;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<at::Tensor> t{torch::from_blob(data, {static_cast<int64_t>(n)}, type)};
    ++stats_.all_reduces;
    stats_.all_reduce_bytes += static_cast<int64_t>(t[0].nbytes());
    struct Clock {
      Stats& s;
      std::chrono::steady_clock::time_point t0;
      ~Clock() {
        s.all_reduce_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
    } clock{stats_, t0};
    if (!Star()) {
      Run("all-reduce", [&] { return pg_->allreduce(t); });
      return;
    }
    ++collectives_;
    if (env_.rank == 0) {
      // Rank 0 adds every rank's values in rank order, then sends the sums back: every rank
      // holds the same bits.
      if (!scratch_.defined() || scratch_.numel() < static_cast<int64_t>(n) ||
          scratch_.scalar_type() != type)
        scratch_ = torch::empty({static_cast<int64_t>(n)}, type);
      std::vector<at::Tensor> in{scratch_.narrow(0, 0, static_cast<int64_t>(n))};
      for (int r = 1; r < env_.world_size; ++r) {
        Point(fmt::format("all-reduce: receive from rank {}", r),
              [&] { return pg_->recv(in, r, kReduceTag); });
        t[0].add_(in[0]);
      }
      for (int r = 1; r < env_.world_size; ++r)
        Point(fmt::format("all-reduce: send to rank {}", r),
              [&] { return pg_->send(t, r, kResultTag); });
    } else {
      Point("all-reduce: send to rank 0", [&] { return pg_->send(t, 0, kReduceTag); });
      Point("all-reduce: receive from rank 0", [&] { return pg_->recv(t, 0, kResultTag); });
    }
  }

  template <typename Start>
  void Run(const std::string& what, Start start) {
    ++collectives_;
    Point(what, start);
  }
  /// One message or collective of the current collective (counted by the caller).
  template <typename Start>
  void Point(const std::string& what, Start start) {
    try {
      start()->wait(options_.timeout);
    } catch (const std::exception& e) {
      Fail(what, e);
    }
  }

  /// Names the rank(s) behind a failed collective from the store's heartbeats, then throws.
  [[noreturn]] void Fail(const std::string& what, const std::exception& e) {
    const std::string cause = FirstLine(e.what());
    std::string who;
    try {
      std::vector<int64_t> beats_before = ReadBeats();
      // Reported failures first: a rank that threw says why before it exits.
      for (int r = 0; r < env_.world_size; ++r) {
        const std::string key = fmt::format("loantwin/failed/{}", r);
        if (r != env_.rank && store_->check({key}))
          who += fmt::format("; rank {} failed: {}", r, StoreString(store_->get(key)));
      }
      if (who.empty()) {
        // Two heartbeat periods: a rank whose beat did not move is dead or stopped.
        std::this_thread::sleep_for(options_.heartbeat * 2 + std::chrono::milliseconds(100));
        const std::vector<int64_t> beats_after = ReadBeats();
        for (int r = 0; r < env_.world_size; ++r) {
          if (r == env_.rank) continue;
          if (beats_after[r] == beats_before[r]) {
            who += fmt::format(
                "; rank {} stopped answering (no heartbeat for {} s: it died or "
                "was stopped)",
                r, 2 * options_.heartbeat.count() / 1000.0);
            continue;
          }
          const int64_t at = ReadCount(fmt::format("loantwin/collectives/{}", r));
          if (at < collectives_)
            who += fmt::format(
                "; rank {} is alive but has not reached collective #{} (it is at "
                "#{}): it hangs or is slower than the timeout of {} s",
                r, collectives_.load(), at, options_.timeout.count() / 1000.0);
        }
      }
    } catch (const std::exception&) {
      who = env_.agent_store || env_.rank == 0
                ? "; the rendezvous store is unreachable"
                : fmt::format("; rank 0 is gone (it hosts the rendezvous store at {}:{})",
                              env_.master_addr, env_.master_port);
    }
    if (who.empty()) who = "; every other rank is alive and at the same collective";
    throw CollectiveError(fmt::format("rank {}: {} (collective #{}) failed: {}{}", env_.rank, what,
                                      collectives_.load(), cause, who));
  }

  std::vector<int64_t> ReadBeats() {
    std::vector<int64_t> out(env_.world_size, -1);
    for (int r = 0; r < env_.world_size; ++r)
      out[r] = ReadCount(fmt::format("loantwin/heartbeat/{}", r));
    return out;
  }
  int64_t ReadCount(const std::string& key) {
    if (!store_->check({key})) return -1;
    return std::stoll(StoreString(store_->get(key)));
  }

  void HeartbeatLoop() {
    int64_t beat = 0;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      try {
        heartbeat_store_->set(fmt::format("loantwin/heartbeat/{}", env_.rank),
                              StoreBytes(std::to_string(++beat)));
        heartbeat_store_->set(fmt::format("loantwin/collectives/{}", env_.rank),
                              StoreBytes(std::to_string(collectives_.load())));
      } catch (const std::exception&) {
        // The store is gone (rank 0 exited): the next collective reports it.
      }
      cv_.wait_for(lock, options_.heartbeat, [this] { return stop_; });
    }
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  }

  static constexpr int kStarMaxRanks = 8;
  // Tags of the star collectives (user Send/Recv tags are small numbers).
  static constexpr int kReduceTag = 0x7ffffff0, kResultTag = 0x7ffffff1, kBroadcastTag = 0x7ffffff2;
  LaunchEnv env_;
  GroupOptions options_;
  at::Tensor scratch_;
  Stats stats_;
  c10::intrusive_ptr<c10d::Store> store_, heartbeat_store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::atomic<int64_t> collectives_{0};
  std::thread heartbeat_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace

LaunchEnv ReadLaunchEnv(const std::function<const char*(const char*)>& get_env) {
  const std::function<const char*(const char*)> get =
      get_env ? get_env : [](const char* name) -> const char* { return std::getenv(name); };
  LaunchEnv e;
  e.world_size = ParseInt(get, "WORLD_SIZE", 1, 65536, true, 1);
  e.rank = ParseInt(get, "RANK", 0, 65535, true, 0);
  if (e.rank >= e.world_size)
    throw ConfigError(fmt::format("RANK={} is not below WORLD_SIZE={}", e.rank, e.world_size));
  e.local_rank = ParseInt(get, "LOCAL_RANK", 0, 65535, false, 0);
  e.local_world_size = ParseInt(get, "LOCAL_WORLD_SIZE", 1, 65536, false, 1);
  const char* addr = get("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0')
    throw ConfigError(fmt::format(
        "MASTER_ADDR is not set: the address of rank 0's host (torchrun, srun scripts and "
        "`loantwin launch` set it; {})",
        kDocs));
  e.master_addr = addr;
  e.master_port = ParseInt(get, "MASTER_PORT", 1, 65535, true, 0);
  const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent != nullptr && std::string(agent) == "True";
  if (e.agent_store)
    e.restart_count = ParseInt(get, "TORCHELASTIC_RESTART_COUNT", 0, 1 << 30, true, 0);
  return e;
}

std::unique_ptr<Collective> CreateProcessGroup(const LaunchEnv& env, const GroupOptions& options) {
  spdlog::info("rank {}/{}: joining the process group at {}:{}{}", env.rank, env.world_size,
               env.master_addr, env.master_port, env.agent_store ? " (torchrun's store)" : "");
  auto group = std::make_unique<GlooGroup>(env, options);
  spdlog::info("rank {}/{}: process group ready (Gloo)", env.rank, env.world_size);
  return group;
}

void ReportRankFailure(Collective* group, const std::string& message) {
  if (auto* g = dynamic_cast<GlooGroup*>(group)) g->PublishFailure(message);
}

}  // namespace loantwin
