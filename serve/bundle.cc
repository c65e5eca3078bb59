#include "serve/bundle.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agents/module_util.h"
#include "core/sha256.h"
#include "env/twin_env.h"

namespace fs = std::filesystem;

namespace loantwin {
namespace {

/// A LibTorch error as one line for a user: no C++ backtrace, no TorchScript traceback (its
/// last line is the error itself).
std::string ShortError(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 ? c10->what_without_backtrace() : e.what();
  if (text.find("Traceback of TorchScript") != std::string::npos) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    text = text.substr(text.rfind('\n') + 1);
  } else {
    text = text.substr(0, text.find('\n'));
  }
  return text.size() > 300 ? text.substr(0, 300) + "..." : text;
}

}  // namespace

void ConfigureTorchThread() {
  torch::jit::setGraphExecutorOptimize(false);
  at::set_num_threads(1);
  PinBlasToOneThread();
}

std::shared_ptr<const PolicyBundle> PolicyBundle::Load(const std::string& dir,
                                                       const std::string& institution_override,
                                                       int warmup_batch) {
  ConfigureTorchThread();
  const std::string manifest_file = (fs::path(dir) / "manifest.json").string();
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(manifest_file + ": " + what);
  };
  auto b = std::shared_ptr<PolicyBundle>(new PolicyBundle());
  b->manifest_ = ExportManifest::Load(dir);  // ManifestError is a std::runtime_error
  const ExportManifest& m = b->manifest_;
  if (m.environment != "twin") fail("not an export of the twin environment");
  EnvOptions eo;
  TwinEnv env(eo, TwinEnvConfig{});
  m.Validate(env, manifest_file);
  m.VerifyFiles(dir);  // a swapped or edited module is refused here
  b->dir_ = dir;
  std::ifstream in(manifest_file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  b->version_ = fmt::format("{}@{}#{}.{}", m.experiment, m.global_step,
                            Sha256Hex(text.str()).substr(0, 12), m.WeightsDigest());
  std::string institution = institution_override;
  if (institution.empty()) institution = m.institution.empty() ? "cu_mid" : m.institution;
  try {
    b->institution_ = LoadInstitution(institution);
  } catch (const std::exception& e) {
    fail(std::string("institution: ") + e.what());
  }
  b->cost_plus_base_.assign(kNumProducts, 0.0);
  if (m.pricing_reference == "cost_plus") {  // the environment's base (env/twin_env.h)
    b->cost_plus_pricing_ = true;
    const auto base = CostPlusCalibrationBase(b->institution_);
    b->cost_plus_base_.assign(base.begin(), base.end());
  }
  for (const auto& [name, entry] : m.roles) {
    ServedRole role = DescribeServedRole(name, entry, b->version_, m.guardrails);
    const std::string file = (fs::path(dir) / entry.file).string();
    try {
      role.module = torch::jit::load(file);
      role.module.eval();
    } catch (const c10::Error& e) {
      fail(fmt::format("role '{}': cannot load {}: {}", name, file, e.what_without_backtrace()));
    }
    // One call of the module as loaded, before freezing: the interpreter checks shapes and
    // throws on a module whose input width differs from the manifest's, where the frozen
    // graph's kernels can read out of bounds instead (seen under AddressSanitizer).
    try {
      b->Decide(role, std::vector<float>(role.features.size(), 0.0f),
                std::vector<uint8_t>(role.mask_width, 1), 1);
    } catch (const std::exception& e) {
      fail(
          fmt::format("role '{}': the module fails on one observation of {} features and a "
                      "mask of {}: {}",
                      name, role.features.size(), role.mask_width, ShortError(e)));
    }
    // Serving calls forward only: freezing inlines the parameters as constants, which saves
    // ~6 us of the interpreter's ~30 us per call (bench/serve_policy_bench.cc) and leaves the
    // arithmetic as it is (no numeric rewrites), so decisions are unchanged. A module that
    // cannot be frozen (one written elsewhere that mutates its attributes, say) is served as
    // it is.
    try {
      role.module = torch::jit::freeze(role.module, c10::nullopt, /*optimize_numerics=*/false);
    } catch (const c10::Error& e) {
      std::string why = e.what_without_backtrace();
      why = why.substr(0, why.find('\n'));
      spdlog::warn("role '{}': {} cannot be frozen ({}); serving it unfrozen", name, file, why);
    } catch (const std::exception& e) {
      spdlog::warn("role '{}': {} cannot be frozen ({}); serving it unfrozen", name, file,
                   e.what());
    }
    b->roles_.emplace(name, std::move(role));
  }
  // Validate every module's output and warm it up at the batch sizes the server uses.
  for (const auto& [name, role] : b->roles_) {
    for (int n : {1, 2, std::max(1, warmup_batch / 2), std::max(1, warmup_batch)}) {
      std::vector<float> obs(static_cast<size_t>(n) * role.features.size(), 0.0f);
      std::vector<uint8_t> mask(static_cast<size_t>(n) * role.mask_width, 1);
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<int64_t> a;
        try {
          a = b->Decide(role, obs, mask, n);
        } catch (const std::exception& e) {
          fail(
              fmt::format("role '{}': the module fails on a batch of {} observations of {} "
                          "features and a mask of {}: {}",
                          name, n, role.features.size(), role.mask_width, ShortError(e)));
        }
        for (size_t c = 0; c < role.components.size(); ++c)
          if (a[c] < 0 || a[c] >= role.components[c].size)
            fail(fmt::format("role '{}': the module returns action {} outside component {}", name,
                             a[c], role.components[c].name));
      }
    }
  }
  return b;
}

ServedRole DescribeServedRole(const std::string& name, const ManifestRole& entry,
                              const std::string& version,
                              const std::vector<GuardrailRule>& guardrails) {
  ServedRole role;
  role.name = name;
  role.algorithm = entry.algorithm;
  role.features = entry.FeatureNames();
  role.mask_width = entry.mask_width;
  role.components = entry.actions;
  for (size_t k = 0; k < role.features.size(); ++k) {
    role.feature_index[role.features[k]] = static_cast<int>(k);
    role.low.push_back(static_cast<float>(entry.features[k].low));
    role.high.push_back(static_cast<float>(entry.features[k].high));
    role.center.push_back(entry.features[k].center);
    role.scale.push_back(entry.features[k].scale);
  }
  for (const auto& comp : role.components) {
    std::vector<std::string> choices;
    for (int v = 0; v < comp.size; ++v) {
      std::string f = nlohmann::json(comp.name).dump() + ":{\"index\":" + std::to_string(v);
      if (v < static_cast<int>(comp.meanings.size()))
        f += ",\"meaning\":" + nlohmann::json(comp.meanings[v]).dump();
      if (v < static_cast<int>(comp.values.size()))
        f += ",\"value\":" + nlohmann::json(comp.values[v]).dump();
      choices.push_back(f + "}");
    }
    role.action_json.push_back(std::move(choices));
  }
  role.response_head = "{\"policy_version\":" + nlohmann::json(version).dump() +
                       ",\"role\":" + nlohmann::json(name).dump() + ",";
  if (!guardrails.empty()) {
    // The layout the environment's guardrails see: features with their scaling, action blocks.
    GuardrailLayout layout;
    layout.role = name;
    layout.features = role.features;
    layout.centers = role.center;
    layout.scales = role.scale;
    layout.mask_width = role.mask_width;
    for (const auto& comp : role.components)
      layout.components.push_back({comp.name, comp.size, comp.mask_offset, comp.values});
    try {
      role.guardrails = RoleGuardrails::Compile(guardrails, layout);
    } catch (const std::invalid_argument& e) {
      throw ManifestError(std::string("guardrails: ") + e.what());
    }
    for (const auto& g : guardrails) role.guardrail_names.push_back(g.name);
  }
  return role;
}

std::vector<uint64_t> ApplyGuardrails(const ServedRole& role, const std::vector<float>& obs,
                                      std::vector<uint8_t>& masks, int n) {
  std::vector<uint64_t> fired(static_cast<size_t>(n), 0);
  if (role.guardrails.empty()) return fired;
  const size_t d = role.features.size(), w = static_cast<size_t>(role.mask_width);
  for (int i = 0; i < n; ++i)
    fired[i] = role.guardrails.Apply(obs.data() + i * d, masks.data() + i * w);
  return fired;
}

std::string GuardrailJson(const ServedRole& role, uint64_t bits) {
  std::string out = "[";
  for (size_t k = 0; k < role.guardrail_names.size(); ++k)
    if (bits >> k & 1) out += (out.size() > 1 ? ",\"" : "\"") + role.guardrail_names[k] + "\"";
  return out + "]";
}

const ServedRole* PolicyBundle::role(const std::string& name) const {
  const auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

std::vector<int64_t> PolicyBundle::Decide(const ServedRole& role, const std::vector<float>& obs,
                                          const std::vector<uint8_t>& masks, int n) const {
  c10::InferenceMode guard;
  const int64_t d = static_cast<int64_t>(role.features.size());
  torch::Tensor o = torch::from_blob(const_cast<float*>(obs.data()), {n, d}, torch::kFloat32);
  torch::Tensor m =
      torch::from_blob(const_cast<uint8_t*>(masks.data()), {n, role.mask_width}, torch::kUInt8);
  torch::Tensor out = role.module.forward({o, m}).toTensor().to(torch::kInt64).contiguous();
  if (out.dim() != 2 || out.size(0) != n ||
      out.size(1) != static_cast<int64_t>(role.components.size()))
    throw std::runtime_error(fmt::format("output of shape [{}]; expected [{}, {}]",
                                         fmt::join(out.sizes(), ", "), n, role.components.size()));
  const int64_t* p = out.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + out.numel());
}

}  // namespace loantwin
