#pragma once
// Applicant groups for fair-lending analysis (docs/governance.md). Every applicant the twin
// generates is given a group and a TransRisk score (0-100) drawn from public score
// distributions by group (configs/applicant_groups/fed2007.yaml: the Federal Reserve's 2007
// report to Congress on credit scoring), consistent with the twin's score band: the bands are
// slices of the pooled (group-share weighted) score distribution with the product's applicant
// mix as their shares, so P(group | band) follows from the groups' distributions. Each applicant
// also carries the group's bad rate at its score (the report's 90+ days past due rate).
//
// The lens only observes: it draws from its own random stream and writes nothing back into
// the twin, so every metric and observation is bit-identical with or without it (tested), and
// no policy input can depend on an applicant's group.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "env/twin/product.h"

namespace loantwin {

class StateWriter;
class StateReader;

/// Score distributions and bad rates by group on a common score grid.
struct ApplicantGroupTable {
  std::string name;                      ///< preset name or file
  std::vector<double> scores;            ///< increasing grid (TransRisk 0..100)
  std::vector<std::string> groups;       ///< group names
  std::vector<double> shares;            ///< population share per group (normalised)
  std::vector<std::vector<double>> cdf;  ///< [group][k]: share with score <= scores[k]
  std::vector<std::vector<double>> bad;  ///< [group][k]: bad rate at scores[k]
  std::string reference;                 ///< the reference group of ratios ("" = highest rate)
  double score_gain_repay = 75;          ///< score change of an approved applicant who repays
  double score_loss_default = 150;       ///< score drop of an approved applicant who defaults

  int num_groups() const { return static_cast<int>(groups.size()); }
  /// Preset name (configs/applicant_groups/<name>.yaml) or path; ConfigError naming the key.
  static ApplicantGroupTable Load(const std::string& name_or_path);
  /// Group g's CDF at score s (linear between grid points) and its inverse.
  double Cdf(int g, double s) const;
  double Quantile(int g, double u) const;
  double BadRate(int g, double s) const;
  /// The pooled CDF (share-weighted) and its inverse (bisection).
  double PooledCdf(double s) const;
  double PooledQuantile(double u) const;
  /// Mean score of group g (from its CDF).
  double MeanScore(int g) const;
};

/// Per (group, band) sums over the applicants a lens has seen.
struct GroupCell {
  double applications = 0, approvals = 0;
  double repay_applications = 0;  ///< sum of (1 - bad rate): the would-be repayers
  double repay_approvals = 0;     ///< the same over approved applicants
  double bad_approvals = 0;       ///< expected defaults among approved (sum of bad rates)
  double amount = 0;              ///< approved amount (credit limit for cards)
  double rate_amount = 0;         ///< amount-weighted APR of approvals
  double margin = 0;        ///< expected annual margin: amount x (APR - funding - bad/2 x LGD)
  double score_change = 0;  ///< expected score change of approvals (Liu et al. 2018)
  double score_sum = 0;     ///< sum of applicants' scores
  static constexpr int kFields = 10;
};

/// Per product, group and score band.
struct GroupOutcomes {
  int num_groups = 0;
  std::vector<GroupCell> cells;  ///< [(product * num_groups + group) * kNumBands + band]
  GroupCell& at(int p, int g, int b) { return cells[Index(p, g, b)]; }
  const GroupCell& at(int p, int g, int b) const { return cells[Index(p, g, b)]; }
  size_t Index(int p, int g, int b) const {
    return (static_cast<size_t>(p) * num_groups + g) * kNumBands + b;
  }
  void Resize(int groups);
  GroupCell Group(int g) const;  ///< summed over products and bands
  void Add(const GroupOutcomes& o);
  void Clear();
};

/// Fairness ratios of a set of outcomes (docs/governance.md).
struct FairnessSummary {
  std::vector<double> approval_rate;  ///< per group (NaN without applicants)
  std::vector<double> air;            ///< approval rate / the reference group's
  std::vector<double> tpr;            ///< approval rate among would-be repayers (Hardt et al. 2016)
  double min_air = 1;                 ///< the smallest adverse-impact ratio
  double eo_gap = 0;                  ///< max - min TPR over groups
  int reference = 0;                  ///< the reference group
};
FairnessSummary Summarise(const GroupOutcomes& o, const ApplicantGroupTable& table);

/// The observer the twin calls when it generates applicants (Twin::set_applicant_lens).
class ApplicantLens {
 public:
  explicit ApplicantLens(const ApplicantGroupTable* table);
  const ApplicantGroupTable& table() const { return *table_; }

  /// n applicants of product p in band b (applicant mix `mix`), approved or not at APR
  /// `apr` with total approved amount `amount`; funding rate and LGD price the margin.
  /// Groups and scores are drawn from the stream `key`.
  void Observe(int p, const BandArray& mix, int band, int64_t n, bool approved, double apr,
               double amount, double funding_rate, double lgd, uint64_t key);

  /// Since the last BeginEpisode (the environment's constraint metrics) and in total.
  const GroupOutcomes& episode() const { return episode_; }
  const GroupOutcomes& total() const { return total_; }
  void BeginEpisode() { episode_.Clear(); }
  void ClearTotal() { total_.Clear(); }

  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);

 private:
  struct BandSlices {
    bool ready = false;
    BandArray mix{};
    /// [band][group]: cumulative P(group | band); [band]: score range per band.
    std::array<std::vector<double>, kNumBands> group_cdf;
    std::array<double, kNumBands + 1> edge{};  ///< pooled score edges, worst band first
  };
  const BandSlices& Slices(int p, const BandArray& mix);

  const ApplicantGroupTable* table_;
  std::array<BandSlices, kNumProducts> slices_;
  GroupOutcomes episode_, total_;
};

}  // namespace loantwin
