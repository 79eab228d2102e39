#include "experiments/report/summary.h"

#include <cmath>

#include "experiments/report/paper.h"
#include "models/router_registry.h"

namespace remoe::experiments {

Stat mean_std(const std::vector<double>& values) {
  Stat s;
  s.n = static_cast<int64_t>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= static_cast<double>(s.n);
  if (s.n == 1) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(s.n - 1));
  return s;
}

std::string row_of(const RunRecord& run) {
  auto it = run.axis_values.find("router");
  if (it == run.axis_values.end()) return run.label;
  std::string row, part;
  for (size_t i = 0; i <= run.label.size(); ++i) {
    if (i < run.label.size() && run.label[i] != '-') {
      part += run.label[i];
      continue;
    }
    if (part != it->second) row += (row.empty() ? "" : "-") + part;
    part.clear();
  }
  return row.empty() ? run.label : row;
}

namespace {

// "E8-relu-s2" → "E8-relu": the point label of a run name.
std::string label_of_run_name(const std::string& name) {
  const size_t dash = name.rfind("-s");
  return dash == std::string::npos ? name : name.substr(0, dash);
}

PointStat* find_point(std::vector<PointStat>& points, const std::string& sweep, const std::string& label) {
  for (PointStat& p : points)
    if (p.sweep == sweep && p.label == label) return &p;
  return nullptr;
}

std::vector<PointStat> point_stats(const std::vector<RunRecord>& runs) {
  std::vector<PointStat> points;
  for (const RunRecord& r : runs) {
    PointStat* p = find_point(points, r.sweep, r.label);
    if (!p) {
      PointStat fresh;
      fresh.sweep = r.sweep;
      fresh.experiment = r.experiment;
      fresh.label = r.label;
      fresh.router = r.router;
      fresh.row = row_of(r);
      fresh.paper = paper_valid_loss(r);
      if (!r.compute_matched_to.empty()) fresh.compute_matched_to = label_of_run_name(r.compute_matched_to);
      points.push_back(std::move(fresh));
      p = &points.back();
    }
    ++p->runs;
    if (r.valid_loss) p->per_seed[r.seed] = *r.valid_loss;
  }
  for (PointStat& p : points) {
    std::vector<double> values;
    for (const auto& [seed, loss] : p.per_seed) values.push_back(loss);
    p.loss = mean_std(values);
  }
  return points;
}

PairStat make_pair(const PointStat& topk, const PointStat& relu, const std::string& row) {
  PairStat pair;
  pair.sweep = topk.sweep;
  pair.row = row;
  pair.topk_label = topk.label;
  pair.relu_label = relu.label;
  std::vector<double> diffs;
  for (const auto& [seed, loss] : relu.per_seed) {
    auto other = topk.per_seed.find(seed);
    if (other == topk.per_seed.end()) continue;
    pair.per_seed[seed] = loss - other->second;
    diffs.push_back(loss - other->second);
    pair.held += loss < other->second;
  }
  pair.diff = mean_std(diffs);
  if (topk.paper && relu.paper) pair.paper_diff = *relu.paper - *topk.paper;
  return pair;
}

}  // namespace

ReportData summarize(const std::vector<RunRecord>& runs) {
  ReportData out;
  out.points = point_stats(runs);
  // Pairs a router with the one its spec is compared with (ReMoE with TopK), point by point.
  for (const PointStat& relu : out.points) {
    const RouterSpec* spec = find_router_spec(relu.router);
    if (!spec || spec->compared_with.empty()) continue;
    for (const PointStat& topk : out.points) {
      if (topk.sweep != relu.sweep || topk.router != spec->compared_with) continue;
      if (topk.compute_matched_to.empty() ? topk.row == relu.row && topk.row != topk.label
                                          : topk.compute_matched_to == relu.label)
        out.pairs.push_back(make_pair(topk, relu, topk.compute_matched_to.empty() ? topk.row : topk.label));
    }
  }
  return out;
}

}  // namespace remoe::experiments
