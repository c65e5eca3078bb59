#include "env/twin/zones.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <stdexcept>

#include "core/config_error.h"
#include "core/yaml_reader.h"

namespace loantwin {
namespace {

// The keys of a zone (and of a tier's defaults), listed once.
template <typename V>
void VisitZoneFields(Zone& z, V&& v) {
  v("beta", z.beta, -5.0, 5.0);
  v("drift", z.drift, -0.5, 0.5);
  v("volatility", z.volatility, 0.0, 1.0);
  v("home_value", z.home_value, 1e3, 1e9);
  v("ltv_mean", z.ltv_mean, 0.0, 0.95);
  v("ltv_sd", z.ltv_sd, 0.0, 0.5);
  v("term_months", z.term_months, 12.0, 480.0);
}

void ReadZoneFields(YamlMap& m, Zone& z) {
  VisitZoneFields(
      z, [&](const char* key, double& f, double lo, double hi) { m.Read(key, &f, lo, hi); });
}

void EmitZoneFields(YAML::Emitter& out, Zone z) {
  VisitZoneFields(z, [&](const char* key, double& f, double, double) {
    out << YAML::Key << key << YAML::Value << f;
  });
}

Zone MakeZone(const std::string& name, const std::string& tier, double beta, double drift,
              double vol, double home_value, double ltv_mean) {
  Zone z;
  z.name = name, z.tier = tier, z.beta = beta, z.drift = drift, z.volatility = vol;
  z.home_value = home_value, z.ltv_mean = ltv_mean;
  return z;
}

}  // namespace

int ZoneSet::Find(const std::string& name) const {
  for (int z = 0; z < size(); ++z)
    if (zones[z].name == name) return z;
  return -1;
}

ZoneSet ZoneSet::Default() {
  ZoneSet s;
  s.tiers = {{"coastal", MakeZone("", "coastal", 1.1, 0.005, 0.05, 7.5e5, 0.50)},
             {"sun_belt", MakeZone("", "sun_belt", 1.3, 0.0, 0.07, 4.0e5, 0.60)},
             {"heartland", MakeZone("", "heartland", 0.6, -0.005, 0.03, 2.5e5, 0.55)}};
  s.zones = {MakeZone("san_francisco", "coastal", 1.2, 0.005, 0.06, 1.1e6, 0.45),
             MakeZone("boston", "coastal", 0.9, 0.01, 0.035, 7.0e5, 0.50),
             MakeZone("phoenix", "sun_belt", 1.5, 0.0, 0.08, 4.2e5, 0.62),
             MakeZone("las_vegas", "sun_belt", 1.8, -0.02, 0.10, 3.8e5, 0.68),
             MakeZone("dallas", "sun_belt", 0.8, 0.01, 0.04, 3.6e5, 0.58),
             MakeZone("cleveland", "heartland", 0.6, -0.005, 0.03, 1.9e5, 0.60)};
  const int n = s.size();
  s.correlation = Eigen::MatrixXd::Identity(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j) s.correlation(i, j) = s.zones[i].tier == s.zones[j].tier ? 0.5 : 0.25;
  s.Factorise();
  return s;
}

void ZoneSet::Factorise() {
  const int n = size();
  if (n == 0) throw std::invalid_argument("zones: at least one zone is needed");
  if (correlation.rows() != n || correlation.cols() != n)
    throw std::invalid_argument(
        fmt::format("zones: the correlation matrix is {}x{}, expected {}x{}", correlation.rows(),
                    correlation.cols(), n, n));
  for (int i = 0; i < n; ++i) {
    if (std::abs(correlation(i, i) - 1.0) > 1e-12)
      throw std::invalid_argument(
          fmt::format("zones: correlation[{}][{}] ({}) must be 1", i, i, correlation(i, i)));
    for (int j = 0; j < i; ++j) {
      if (std::abs(correlation(i, j) - correlation(j, i)) > 1e-12)
        throw std::invalid_argument(fmt::format(
            "zones: the correlation matrix is not symmetric ({} vs {} at [{}][{}] and [{}][{}])",
            correlation(i, j), correlation(j, i), i, j, j, i));
      if (std::abs(correlation(i, j)) > 1.0)
        throw std::invalid_argument(fmt::format(
            "zones: correlation[{}][{}] = {} is outside [-1, 1]", i, j, correlation(i, j)));
    }
  }
  Eigen::LLT<Eigen::MatrixXd> llt(correlation);
  const Eigen::VectorXd eig =
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(correlation).eigenvalues();
  if (llt.info() != Eigen::Success || eig.minCoeff() <= 1e-10)
    throw std::invalid_argument(fmt::format(
        "zones: the correlation matrix is not positive definite (smallest eigenvalue {:.4g}); "
        "the Cholesky factorisation needs a valid correlation matrix",
        eig.minCoeff()));
  cholesky = llt.matrixL();
}

ZoneSet ZoneSet::Parse(const YamlValue& value) {
  ZoneSet s;
  YamlMap m(value);
  if (auto tiers = m.Get("tiers")) {
    YamlMap tm(*tiers);
    for (auto it = tiers->node().begin(); it != tiers->node().end(); ++it) {
      const std::string name = it->first.as<std::string>();
      ZoneTier t{name, Zone{}};
      t.defaults.tier = name;
      YamlMap fields(tm.Require(name));
      ReadZoneFields(fields, t.defaults);
      fields.Done();
      s.tiers.push_back(t);
    }
  }
  const YamlValue list = m.Require("zones");
  for (const auto& item : list.Items()) {
    YamlMap zm(item);
    Zone z;
    z.name = zm.Require("name").AsString();
    if (z.name.empty()) item.Fail("a zone needs a name");
    if (auto tier = zm.Get("tier")) {
      const std::string t = tier->AsString();
      bool found = false;
      for (const auto& td : s.tiers)
        if (td.name == t) z = td.defaults, found = true;
      if (!found) tier->Fail(fmt::format("unknown tier '{}' (declare it under tiers:)", t));
      z.name = zm.Require("name").AsString();
      z.tier = t;
    }
    ReadZoneFields(zm, z);
    zm.Done();
    if (s.Find(z.name) >= 0) item.Fail(fmt::format("zone '{}' is listed twice", z.name));
    s.zones.push_back(z);
  }
  if (s.zones.empty()) list.Fail("at least one zone is needed");
  if (s.zones.size() > 32) list.Fail("at most 32 zones");
  const int n = s.size();
  s.correlation = Eigen::MatrixXd::Identity(n, n);
  if (auto c = m.Get("correlation")) {
    if (c->IsScalar()) {
      const double rho = c->AsDouble(-1, 1);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
          if (i != j) s.correlation(i, j) = rho;
    } else {
      const auto rows = c->Items();
      if (static_cast<int>(rows.size()) != n)
        c->Fail(fmt::format("expected {} rows (one per zone), got {}", n, rows.size()));
      for (int i = 0; i < n; ++i) {
        const auto row = rows[i].AsDoubleList(n, -1, 1);
        for (int j = 0; j < n; ++j) s.correlation(i, j) = row[j];
      }
    }
    try {
      s.Factorise();
    } catch (const std::invalid_argument& e) {
      c->Fail(e.what());
    }
  } else {
    s.Factorise();
  }
  m.Done();
  return s;
}

std::string ZoneSet::ToYaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "tiers" << YAML::Value << YAML::BeginMap;
  for (const auto& t : tiers) {
    out << YAML::Key << t.name << YAML::Value << YAML::Flow << YAML::BeginMap;
    EmitZoneFields(out, t.defaults);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::Key << "zones" << YAML::Value << YAML::BeginSeq;
  for (const auto& z : zones) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << z.name;
    if (!z.tier.empty()) out << YAML::Key << "tier" << YAML::Value << z.tier;
    EmitZoneFields(out, z);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "correlation" << YAML::Value << YAML::BeginSeq;
  for (int i = 0; i < size(); ++i) {
    out << YAML::Flow << YAML::BeginSeq;
    for (int j = 0; j < size(); ++j) out << correlation(i, j);
    out << YAML::EndSeq;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return out.c_str();
}

void StepZoneHpi(const ZoneSet& zones, double national_log_change, const double* normals,
                 double* log_hpi) {
  const int n = zones.size();
  for (int z = 0; z < n; ++z) {
    double e = 0;
    for (int k = 0; k <= z; ++k) e += zones.cholesky(z, k) * normals[k];
    const Zone& zz = zones.zones[z];
    log_hpi[z] +=
        zz.beta * national_log_change + zz.drift / 12.0 + zz.volatility / std::sqrt(12.0) * e;
  }
}

}  // namespace loantwin
