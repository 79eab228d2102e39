// The statistics of a report: per point (a sweep's label), the final held-out loss over seeds
// (mean ± sample std); per ReMoE/TopK pair at the same point and seed, the difference
// ReMoE − TopK (mean ± std, and in how many seeds the paper's ordering ReMoE < TopK held).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "experiments/report/run_record.h"

namespace remoe::experiments {

struct Stat {
  int64_t n = 0;
  double mean = 0, std = 0;  // std: sample standard deviation (n − 1); 0 when n = 1
};

// Mean and sample std of `values` (n = 0: mean 0, std 0).
Stat mean_std(const std::vector<double>& values);

struct PointStat {
  std::string sweep, experiment, label, router;
  std::string row;                     // the table row: the label without its router level
  std::map<int64_t, double> per_seed;  // seed → final held-out loss of the finished runs
  Stat loss;
  std::optional<double> paper;
  int64_t runs = 0;                    // runs of the point found (finished or not)
  std::string compute_matched_to;      // the ReMoE point label this TopK point is matched to
};

struct PairStat {
  std::string sweep, row, topk_label, relu_label;
  std::map<int64_t, double> per_seed;  // seed → ReMoE − TopK (seeds where both finished)
  Stat diff;
  std::optional<double> paper_diff;
  int64_t held = 0;                    // seeds with ReMoE < TopK
};

struct ReportData {
  std::vector<PointStat> points;  // in the order the runs were given (a sweep's grid order)
  std::vector<PairStat> pairs;
};

ReportData summarize(const std::vector<RunRecord>& runs);

// A point's row: its label without the router level ("E8-relu" → "E8"); labels of points off
// the grid (no router axis) are their own row.
std::string row_of(const RunRecord& run);

}  // namespace remoe::experiments
