// The `loantwin._loantwin` extension: the vectorised multi-agent environments (env/) for Python.
// A thin layer over MultiAgentEnv: its buffers come out as numpy arrays that view the
// environment's own memory (created once; no copy or allocation per step), the GIL is released
// while the environment resets, acts and steps, and every C++ error becomes a Python exception
// with the C++ message. The Gymnasium- and PettingZoo-style classes are Python (loantwin/*.py).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/config_error.h"
#include "core/version.h"
#include "core/yaml_reader.h"
#include "env/env_registry.h"
#include "env/guardrails.h"
#include "env/multi_agent_env.h"

namespace py = pybind11;

namespace loantwin {
namespace {

/// One environment and the numpy views of its buffers. Calls are serialised by a mutex (the
/// GIL is released while the environment runs, so two Python threads could otherwise step it
/// at once).
class PyEnv {
 public:
  PyEnv(const std::string& name, int num_envs, uint64_t seed, int num_threads,
        int max_episode_steps, const std::string& config_text, const std::string& config_file,
        const std::string& config_name, const std::string& guardrails_text) {
    EnvOptions o;
    o.num_envs = num_envs;
    o.num_threads = num_threads;
    o.seed = seed;
    o.max_episode_steps = max_episode_steps;
    // The experiment YAML's bounds (env.num_envs, env.threads; training/experiment.h).
    if (num_envs < 1 || num_envs > 1000000)
      throw std::invalid_argument("num_envs must be in [1, 1000000], got " +
                                  std::to_string(num_envs));
    if (num_threads < 1 || num_threads > 1024)
      throw std::invalid_argument("threads must be in [1, 1024], got " +
                                  std::to_string(num_threads));
    if (max_episode_steps < 0)
      throw std::invalid_argument("max_episode_steps must be >= 0 (0 = the environment's own)");
    if (!config_text.empty() && !config_file.empty())
      throw std::invalid_argument("give the config as a mapping or as a file, not both");
    std::unique_ptr<YamlValue> config;
    if (!config_file.empty())
      config = std::make_unique<YamlValue>(YamlValue::LoadFile(config_file));
    else if (!config_text.empty())
      config = std::make_unique<YamlValue>(YamlValue::LoadString(config_text, config_name));
    if (config && !config->IsMap() && !config->node().IsNull())
      config->Fail("the environment's config must be a mapping");
    env_ = MakeEnv(name, o, config && config->IsMap() ? config.get() : nullptr);
    if (!guardrails_text.empty()) {
      const YamlValue rules = YamlValue::LoadString(guardrails_text, "<guardrails>");
      env_->SetGuardrails(ParseGuardrails(rules));
    }
    for (int r = 0; r < env_->num_roles(); ++r) {
      const int dims = env_->role(r).action_space.action_dims();
      scratch_.emplace_back(static_cast<size_t>(env_->num_envs()) * dims);
    }
  }

  MultiAgentEnv& env() { return *env_; }
  const MultiAgentEnv& env() const { return *env_; }

  int RoleIndex(const py::object& role) const {
    if (py::isinstance<py::str>(role)) {
      const std::string name = role.cast<std::string>();
      const int r = env_->FindRole(name);
      if (r < 0) {
        std::string names;
        for (int k = 0; k < env_->num_roles(); ++k) names += (k ? ", " : "") + env_->role(k).name;
        throw py::key_error(env_->name() + ": no role '" + name + "' (roles: " + names + ")");
      }
      return r;
    }
    if (!py::isinstance<py::int_>(role)) throw py::type_error("a role is its name or its index");
    const int r = role.cast<int>();
    if (r < 0 || r >= env_->num_roles())
      throw py::index_error(env_->name() + ": no role " + std::to_string(r) + " (it has " +
                            std::to_string(env_->num_roles()) + ")");
    return r;
  }

  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    py::gil_scoped_release release;
    env_->Reset();
  }

  /// Role r's actions (None = its fallback). With `project`, actions the current mask forbids
  /// move to the nearest allowed value of their component (ties: the lower); the returned count
  /// says how many instances were adjusted. Without it they raise ValueError (the C++ message).
  int Act(int r, const py::object& actions, bool project) {
    std::lock_guard<std::mutex> lock(mu_);
    if (actions.is_none()) {
      py::gil_scoped_release release;
      env_->Act(r, nullptr);
      return 0;
    }
    const int32_t* data = Convert(r, actions);
    int adjusted = 0;
    if (project) {
      int32_t* own = scratch_[r].data();
      if (data != own) std::memcpy(own, data, scratch_[r].size() * sizeof(int32_t));
      adjusted = ProjectToMask(r, own);
      data = own;
    }
    py::gil_scoped_release release;
    env_->Act(r, data);
    return adjusted;
  }

  /// Checks role r's actions (type, shape, each component within its range) without acting:
  /// ParallelEnv checks every role's before the first acts, so an error leaves the month as it was.
  void CheckActions(int r, const py::object& actions) {
    std::lock_guard<std::mutex> lock(mu_);
    const int32_t* a = Convert(r, actions);
    const RoleSpec& spec = env_->role(r);
    const auto& nvec = spec.action_space.dims().nvec();
    const int dims = static_cast<int>(nvec.size());
    for (int i = 0; i < env_->num_envs(); ++i)
      for (int d = 0; d < dims; ++d) {
        const int32_t v = a[static_cast<size_t>(i) * dims + d];
        if (v < 0 || v >= nvec[d])
          throw py::value_error(
              env_->name() + ": role '" + spec.name + "', instance " + std::to_string(i) +
              ": action component '" +
              (d < static_cast<int>(spec.action_dim_names.size()) ? spec.action_dim_names[d]
                                                                  : std::to_string(d)) +
              "' = " + std::to_string(v) + " is out of range [0, " + std::to_string(nvec[d]) + ")");
      }
  }

  void Step() {
    std::lock_guard<std::mutex> lock(mu_);
    py::gil_scoped_release release;
    env_->Step();
  }

  /// The single-agent step of role r: its actions, the month, then the roles above r decide
  /// for the next month (their fallbacks), so role r's observation and mask are final.
  void StepRole(int r, const py::object& actions) {
    std::lock_guard<std::mutex> lock(mu_);
    const int32_t* data = actions.is_none() ? nullptr : Convert(r, actions);
    py::gil_scoped_release release;
    env_->Act(r, data);
    env_->Step();
    for (int above = 0; above < r; ++above) env_->Act(above, nullptr);
  }

  void ResetRole(int r) {
    std::lock_guard<std::mutex> lock(mu_);
    py::gil_scoped_release release;
    env_->Reset();
    for (int above = 0; above < r; ++above) env_->Act(above, nullptr);
  }

  /// A numpy array viewing `ptr` (rows = instances); read-only unless `writeable`. Its base is
  /// this object, which therefore outlives the array. Only buffers the environment rewrites in
  /// full every step and never reads (rewards, reward vectors, terminated, truncated) are
  /// writeable, so in-place transforms (Gymnasium's reward wrappers) work and cannot change
  /// the environment; observations and masks, which it reads or writes in part, are read-only.
  template <typename T>
  py::array View(const T* ptr, std::vector<py::ssize_t> shape, py::handle self,
                 const char* dtype = nullptr, bool writeable = false) const {
    py::dtype dt = dtype ? py::dtype(dtype) : py::dtype::of<T>();
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t stride = static_cast<py::ssize_t>(sizeof(T));
    for (size_t k = shape.size(); k-- > 0;) {
      strides[k] = stride;
      stride *= shape[k];
    }
    py::array a(dt, shape, strides, ptr, self);
    if (!writeable)
      py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
  }

 private:
  /// The actions as int32 [N, dims] (or [N] for one component): int32 C-contiguous arrays are
  /// used in place; other integer arrays are copied into a buffer allocated once.
  const int32_t* Convert(int r, const py::object& obj) {
    const RoleSpec& spec = env_->role(r);
    const int n = env_->num_envs(), dims = spec.action_space.action_dims();
    if (!py::isinstance<py::array>(obj))
      throw py::type_error(spec.name + ": actions must be a numpy array of integers, shape (" +
                           std::to_string(n) +
                           (dims == 1 ? ",)" : ", " + std::to_string(dims) + ")") + ", not " +
                           std::string(py::str(obj.get_type().attr("__name__"))));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(spec.name + ": actions must be integers, not dtype " +
                           std::string(py::str(a.dtype())));
    const bool shape_ok = (a.ndim() == 2 && a.shape(0) == n && a.shape(1) == dims) ||
                          (a.ndim() == 1 && dims == 1 && a.shape(0) == n);
    if (!shape_ok) {
      std::string got = "(";
      for (py::ssize_t k = 0; k < a.ndim(); ++k)
        got += (k ? ", " : "") + std::to_string(a.shape(k));
      got += a.ndim() == 1 ? ",)" : ")";
      throw py::value_error(
          spec.name + ": actions must have shape (" + std::to_string(n) +
          (dims == 1 ? ",) or (" + std::to_string(n) + ", 1)" : ", " + std::to_string(dims) + ")") +
          ", not " + got);
    }
    if (kind == 'i' && a.itemsize() == 4 && (a.flags() & py::array::c_style))
      return static_cast<const int32_t*>(a.data());
    int32_t* out = scratch_[r].data();
    py::array_t<int64_t> wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>(a);
    const int64_t* src = wide.data();
    for (size_t k = 0; k < scratch_[r].size(); ++k) {
      if (src[k] < std::numeric_limits<int32_t>::min() ||
          src[k] > std::numeric_limits<int32_t>::max())
        throw py::value_error(spec.name + ": action " + std::to_string(src[k]) + " at index " +
                              std::to_string(k) + " is out of range");
      out[k] = static_cast<int32_t>(src[k]);
    }
    return out;
  }

  int ProjectToMask(int r, int32_t* actions) const {
    const RoleSpec& spec = env_->role(r);
    const MultiDiscrete& md = spec.action_space.dims();
    const int dims = md.size(), width = md.mask_width();
    const uint8_t* masks = env_->action_masks(r);
    const uint8_t* acting = env_->acting(r);
    int adjusted = 0;
    for (int i = 0; i < env_->num_envs(); ++i) {
      if (!acting[i]) continue;
      bool moved = false;
      for (int d = 0; d < dims; ++d) {
        const uint8_t* m = masks + static_cast<size_t>(i) * width + md.mask_offset(d);
        int32_t& a = actions[static_cast<size_t>(i) * dims + d];
        const int n = md.nvec()[d];
        if (a < 0 || a >= n || m[a]) continue;  // out of range: Act reports it
        int best = -1;
        for (int gap = 1; gap < n && best < 0; ++gap) {
          if (a - gap >= 0 && m[a - gap])
            best = a - gap;
          else if (a + gap < n && m[a + gap])
            best = a + gap;
        }
        if (best >= 0) {
          a = best;
          moved = true;
        }
      }
      adjusted += moved;
    }
    return adjusted;
  }

  std::unique_ptr<MultiAgentEnv> env_;
  std::vector<std::vector<int32_t>> scratch_;  ///< [role][N * dims]
  std::mutex mu_;
};

py::dict RoleDict(const RoleSpec& s) {
  py::dict d;
  d["name"] = s.name;
  d["cadence"] = s.cadence;
  d["feature_names"] = s.features.names();
  const Box box = s.observation_space();
  d["low"] = py::array_t<float>(box.size(), box.low().data());
  d["high"] = py::array_t<float>(box.size(), box.high().data());
  d["nvec"] = s.action_space.dims().nvec();
  d["multi_discrete"] = s.action_space.is_multi_discrete();
  d["mask_width"] = s.action_space.mask_width();
  d["action_dim_names"] = s.action_dim_names;
  d["action_meanings"] = s.action_meanings;
  d["action_values"] = s.action_values;
  d["objectives"] = s.objectives;
  return d;
}

/// Defines `name(role)` on the Env class: a read-only (unless writeable) view of the per-role
/// buffer get(env, r), shaped [num_envs, width(env, r)], or [num_envs] when width is nullptr.
/// Views are created once per call, keep the Env alive and are overwritten by every reset/step.
template <typename Get, typename Width>
void DefRoleView(py::class_<PyEnv>& cls, const char* name, Get get, Width width,
                 const char* dtype = nullptr, bool writeable = false) {
  cls.def(name, [get, width, dtype, writeable](py::object self, const py::object& role) {
    PyEnv& e = self.cast<PyEnv&>();
    const int r = e.RoleIndex(role);
    const MultiAgentEnv& env = e.env();
    std::vector<py::ssize_t> shape{env.num_envs()};
    if constexpr (!std::is_same_v<Width, std::nullptr_t>) shape.push_back(width(env, r));
    return e.View(get(env, r), shape, self, dtype, writeable);
  });
}

/// Defines `name()` on the Env class: a view of the per-instance buffer get(env), [num_envs].
template <typename Get>
void DefEnvView(py::class_<PyEnv>& cls, const char* name, Get get, const char* dtype = nullptr,
                bool writeable = false) {
  cls.def(name, [get, dtype, writeable](py::object self) {
    PyEnv& e = self.cast<PyEnv&>();
    return e.View(get(e.env()), {e.env().num_envs()}, self, dtype, writeable);
  });
}

}  // namespace
}  // namespace loantwin

PYBIND11_MODULE(_loantwin, m) {
  using loantwin::PyEnv;
  m.doc() = "loantwin's vectorised multi-agent environments (see the loantwin package)";
  m.attr("__version__") = loantwin::LoantwinVersion();
  py::register_exception<loantwin::ConfigError>(m, "ConfigError", PyExc_ValueError);
  m.def("registered_envs", &loantwin::RegisteredEnvs, "Names of the registered environments.");

  py::class_<PyEnv> cls(m, "Env");
  cls.def(py::init<const std::string&, int, uint64_t, int, int, const std::string&,
                   const std::string&, const std::string&, const std::string&>(),
          py::arg("name"), py::arg("num_envs") = 1, py::arg("seed") = 0, py::arg("threads") = 1,
          py::arg("max_episode_steps") = 0, py::arg("config_text") = "",
          py::arg("config_file") = "", py::arg("config_name") = "<config>",
          py::arg("guardrails_text") = "")
      .def_property_readonly("name", [](const PyEnv& e) { return e.env().name(); })
      .def_property_readonly("num_envs", [](const PyEnv& e) { return e.env().num_envs(); })
      .def_property_readonly("num_roles", [](const PyEnv& e) { return e.env().num_roles(); })
      .def_property_readonly("seed", [](const PyEnv& e) { return e.env().seed(); })
      .def_property_readonly("version", [](const PyEnv& e) { return e.env().version(); })
      .def_property_readonly("max_episode_steps",
                             [](const PyEnv& e) { return e.env().max_episode_steps(); })
      .def_property_readonly("config_yaml", [](const PyEnv& e) { return e.env().ConfigYaml(); })
      .def_property_readonly("guardrail_names",
                             [](const PyEnv& e) {
                               std::vector<std::string> names;
                               for (const auto& g : e.env().guardrails()) names.push_back(g.name);
                               return names;
                             })
      .def(
          "guardrails_fired",
          [](const PyEnv& e, const py::object& role) {
            const int r = e.RoleIndex(role), n = e.env().num_envs();
            py::array_t<uint64_t> out(n);
            auto v = out.mutable_unchecked<1>();
            for (int i = 0; i < n; ++i) v(i) = e.env().guardrails_fired(r, i);
            return out;
          },
          "Per instance, the guardrails (bit k: rule k) that restricted the role's current mask.")
      .def_property_readonly("metric_names", [](const PyEnv& e) { return e.env().metric_names(); })
      .def("role_index", &PyEnv::RoleIndex)
      .def("role",
           [](const PyEnv& e, const py::object& r) {
             return loantwin::RoleDict(e.env().role(e.RoleIndex(r)));
           })
      .def("reset", &PyEnv::Reset)
      .def(
          "act",
          [](PyEnv& e, const py::object& role, const py::object& actions, bool project) {
            return e.Act(e.RoleIndex(role), actions, project);
          },
          py::arg("role"), py::arg("actions"), py::arg("project") = false)
      .def("check_actions",
           [](PyEnv& e, const py::object& role, const py::object& actions) {
             e.CheckActions(e.RoleIndex(role), actions);
           })
      .def("step", &PyEnv::Step)
      .def("reset_role", [](PyEnv& e, const py::object& role) { e.ResetRole(e.RoleIndex(role)); })
      .def("step_role", [](PyEnv& e, const py::object& role,
                           const py::object& actions) { e.StepRole(e.RoleIndex(role), actions); })
      .def("set_fallback",
           [](PyEnv& e, const py::object& role, const std::string& policy) {
             const int r = e.RoleIndex(role);
             if (policy != "baseline" && policy != "random")
               throw py::value_error("fallback must be 'baseline' or 'random', not '" + policy +
                                     "'");
             e.env().SetFallback(r, policy == "baseline" ? loantwin::FallbackPolicy::kBaseline
                                                         : loantwin::FallbackPolicy::kRandom);
           })
      .def(
          "metrics",
          [](const PyEnv& e) {
            const auto& env = e.env();
            const int n = env.num_envs(), k = static_cast<int>(env.metric_names().size());
            py::array_t<double> out({n, k});
            auto v = out.mutable_unchecked<2>();
            for (int i = 0; i < n; ++i)
              for (int j = 0; j < k; ++j) v(i, j) = env.metric(i, j);
            return out;
          },
          "Per-instance metrics of the last step, [num_envs, len(metric_names)] (a copy).")
      .def("instance_labels", [](const PyEnv& e) {
        std::vector<std::string> out;
        for (int i = 0; i < e.env().num_envs(); ++i) out.push_back(e.env().instance_label(i));
        return out;
      });
  // Views of the environment's buffers (see DefRoleView / DefEnvView).
  using Env = loantwin::MultiAgentEnv;
  using loantwin::DefEnvView;
  using loantwin::DefRoleView;
  const auto obs_dim = [](const Env& env, int r) { return env.role(r).obs_dim(); };
  const auto mask_width = [](const Env& env, int r) {
    return env.role(r).action_space.mask_width();
  };
  DefRoleView(
      cls, "observations", [](const Env& env, int r) { return env.observations(r); }, obs_dim);
  DefRoleView(
      cls, "final_observations", [](const Env& env, int r) { return env.final_observations(r); },
      obs_dim);
  DefRoleView(
      cls, "action_masks", [](const Env& env, int r) { return env.action_masks(r); }, mask_width,
      "?");
  DefRoleView(
      cls, "final_action_masks", [](const Env& env, int r) { return env.final_action_masks(r); },
      mask_width, "?");
  DefRoleView(
      cls, "acting", [](const Env& env, int r) { return env.acting(r); }, nullptr, "?");
  DefRoleView(
      cls, "actions", [](const Env& env, int r) { return env.actions(r); },
      [](const Env& env, int r) { return env.role(r).action_space.action_dims(); });
  DefRoleView(
      cls, "rewards", [](const Env& env, int r) { return env.rewards(r); }, nullptr, nullptr, true);
  DefRoleView(
      cls, "reward_vectors", [](const Env& env, int r) { return env.reward_vectors(r); },
      [](const Env& env, int r) { return static_cast<int>(env.role(r).objectives.size()); },
      nullptr, true);
  DefEnvView(
      cls, "terminated", [](const Env& env) { return env.terminated(); }, "?", true);
  DefEnvView(
      cls, "truncated", [](const Env& env) { return env.truncated(); }, "?", true);
  DefEnvView(cls, "episode_steps", [](const Env& env) { return env.episode_steps(); });
  DefEnvView(cls, "episodes", [](const Env& env) { return env.episodes(); });
}
