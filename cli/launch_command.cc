// `loantwin launch --nproc N -- <command...>`: starts N ranks of a distributed run on this
// machine without Python, setting the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK, ROLE_RANK), and watches them: when a
// rank fails, the others get --grace seconds to stop on their own (they name the failed rank),
// then are terminated. docs/distributed.md.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "core/config_error.h"

namespace loantwin::cli {
namespace {

volatile sig_atomic_t forwarded_signal = 0;
void OnSignal(int sig) {
  forwarded_signal = sig;
}

/// A port the kernel says is free on the loopback interface now.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("launch: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("launch: no free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
  return "stopped";
}
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

struct Rank {
  pid_t pid = -1;
  bool done = false;
  int status = 0;
};

}  // namespace

Runner RegisterLaunch(CLI::App& app) {
  struct Args {
    int nproc = 2, port = 0;
    double grace = 30;
    std::vector<std::string> command;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "launch",
      "Start N ranks of a distributed run on this machine, with torchrun's environment "
      "(loantwin launch --nproc 2 -- loantwin evaluate ... --distributed)");
  cmd->add_option("--nproc", a->nproc, "ranks to start")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--master-port", a->port, "the rendezvous port (default: a free one)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--grace", a->grace,
                  "seconds the other ranks get to stop on their own after one fails, before "
                  "they are terminated")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_option("command", a->command,
                  "the command each rank runs, after --; a first word 'loantwin' runs this binary")
      ->required();
  return [a] {
    std::vector<std::string> command = a->command;
    if (command[0] == "loantwin") command[0] = "/proc/self/exe";
    const int port = a->port > 0 ? a->port : FreePort();
    fmt::print(stderr, "launch: {} ranks, MASTER_ADDR=127.0.0.1 MASTER_PORT={}: {}\n", a->nproc,
               port, fmt::join(a->command, " "));
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    std::vector<Rank> ranks(a->nproc);
    for (int r = 0; r < a->nproc; ++r) {
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error(std::string("launch: fork: ") + std::strerror(errno));
      if (pid == 0) {
        const auto set = [](const char* k, const std::string& v) { ::setenv(k, v.c_str(), 1); };
        set("RANK", std::to_string(r));
        set("LOCAL_RANK", std::to_string(r));
        set("GROUP_RANK", "0");
        set("ROLE_RANK", std::to_string(r));
        set("WORLD_SIZE", std::to_string(a->nproc));
        set("LOCAL_WORLD_SIZE", std::to_string(a->nproc));
        set("ROLE_WORLD_SIZE", std::to_string(a->nproc));
        set("MASTER_ADDR", "127.0.0.1");
        set("MASTER_PORT", std::to_string(port));
        ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
        std::vector<char*> argv;
        for (auto& w : command) argv.push_back(w.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "launch: rank %d: cannot run %s: %s\n", r, a->command[0].c_str(),
                     std::strerror(errno));
        std::_Exit(127);
      }
      ranks[r].pid = pid;
      fmt::print(stderr, "launch: rank {} is pid {}\n", r, pid);
    }
    using Clock = std::chrono::steady_clock;
    int first_failed = -1, running = a->nproc;
    Clock::time_point deadline = Clock::time_point::max();
    bool terminated = false;
    while (running > 0) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        for (int r = 0; r < a->nproc; ++r) {
          if (ranks[r].pid != pid) continue;
          ranks[r].done = true;
          ranks[r].status = status;
          --running;
          const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
          if (!ok && first_failed < 0) {
            first_failed = r;
            fmt::print(stderr, "launch: rank {} (pid {}) {}; {}\n", r, pid, DescribeStatus(status),
                       running > 0 ? fmt::format("the other ranks get {} s to stop", a->grace)
                                   : "no rank is left");
            deadline =
                Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(a->grace * 1000));
          }
        }
        continue;
      }
      if (pid < 0 && errno != EINTR) break;
      if (forwarded_signal != 0) {
        for (const auto& rk : ranks)
          if (!rk.done) ::kill(rk.pid, forwarded_signal);
        forwarded_signal = 0;
      }
      if (Clock::now() >= deadline && !terminated) {
        terminated = true;
        for (int r = 0; r < a->nproc; ++r)
          if (!ranks[r].done) {
            fmt::print(stderr,
                       "launch: rank {} (pid {}) still runs after the grace period: "
                       "terminating it\n",
                       r, ranks[r].pid);
            ::kill(ranks[r].pid, SIGTERM);
          }
        deadline = Clock::now() + std::chrono::seconds(5);
      } else if (Clock::now() >= deadline && terminated) {
        for (const auto& rk : ranks)
          if (!rk.done) ::kill(rk.pid, SIGKILL);
        deadline = Clock::time_point::max();
      }
      // Polls for exits: the launcher only waits, so a short sleep costs nothing.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (first_failed < 0) {
      fmt::print(stderr, "launch: all {} ranks finished\n", a->nproc);
      return 0;
    }
    for (int r = 0; r < a->nproc; ++r)
      fmt::print(stderr, "launch:   rank {}: {}\n", r, DescribeStatus(ranks[r].status));
    fmt::print(stderr, "launch: failed: rank {} {}\n", first_failed,
               DescribeStatus(ranks[first_failed].status));
    return ExitCode(ranks[first_failed].status);
  };
}

}  // namespace loantwin::cli
