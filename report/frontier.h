#pragma once
// The risk-return (efficient) frontier of evaluated policies on one scenario: return = mean of
// a stress metric (cumulative net income or ROE), risk = 97.5% expected shortfall of the
// cumulative P&L or the probability of a capital breach (the share of paths below the regime's
// minimum or its minimum plus buffer in some month, failed, or short of liquidity). A policy is
// Pareto-efficient when no other policy has at least its return and at most its risk, and is
// strictly better in one of the two.

#include <string>
#include <utility>
#include <vector>

#include "report/stress_report.h"

namespace loantwin {

/// (return, risk) points -> efficient flags.
std::vector<bool> ParetoEfficient(const std::vector<std::pair<double, double>>& return_risk);

struct FrontierPoint {
  std::string policy, kind;
  double return_value = 0, risk = 0;
  bool efficient = false;
};

struct FrontierReport {
  StressReport stress;        ///< exactly one scenario
  std::string return_metric;  ///< cumulative_net_income | roe
  std::string risk_metric;    ///< FrontierRiskMetrics()
  std::vector<FrontierPoint> points;
};

/// The risk axes: es_975, then the breach flags (BreachFlags()) as probabilities.
const std::vector<std::string>& FrontierRiskMetrics();
/// "currency" for es_975, "fraction" for the breach probabilities (FormatValue's units).
std::string FrontierRiskUnit(const std::string& risk_metric);
/// The axis label: "97.5% expected shortfall of cumulative P&L (a loss)" or "share of <flag>".
std::string FrontierRiskLabel(const std::string& risk_metric);

FrontierReport BuildFrontier(StressReport stress, const std::string& return_metric,
                             const std::string& risk_metric = "es_975");

/// frontier.json, frontier.md, frontier.html (+ frontier.svg) and the full stress report
/// (report.*) of the scenario, in `dir`.
std::vector<std::string> WriteFrontier(const FrontierReport& frontier, const std::string& dir,
                                       bool charts);

}  // namespace loantwin
