#include "experiments/report/paper.h"

#include <map>

#include "models/router_registry.h"

namespace remoe::experiments {

namespace {

struct MoePair {
  double moe, remoe;
};

// spec §4, "Scaling E" (182M, k = 1).
const std::map<int64_t, MoePair> kScalingE = {{4, {1.971, 1.961}},  {8, {1.936, 1.921}},  {16, {1.907, 1.883}},
                                              {32, {1.874, 1.852}}, {64, {1.854, 1.826}}, {128, {1.852, 1.815}}};
// spec §4, "Scaling G" (182M, E = 8, k = 1).
const std::map<int64_t, MoePair> kScalingG = {{1, {1.936, 1.921}},  {2, {1.912, 1.902}},  {4, {1.899, 1.896}},
                                              {8, {1.898, 1.885}},  {16, {1.895, 1.879}}, {32, {1.893, 1.872}},
                                              {64, {1.885, 1.872}}};
constexpr double kDense182M = 2.042, kDenseTimes8 = 1.873;
// spec §4, "Scaling N" (E = 8, k = 1): 182M, 469M, 978M.
struct NRow {
  double dense, moe, remoe;
};
constexpr NRow kScalingN[] = {{2.042, 1.936, 1.921}, {1.886, 1.796, 1.773}, {1.822, 1.730, 1.715}};

// spec §4, "Routing methods" (Table 2's average column, %).
const std::map<std::string, double> kZeroShotAverage = {{"dense", 38.20}, {"hash", 38.79}, {"lory", 37.70},
                                                         {"sparsemixer", 38.39}, {"expert_choice", 38.53},
                                                         {"topk", 39.67}, {"relu", 40.03}};

// The paper's column a router is set beside (router registry), "" for none.
std::string column_of(const std::string& router) {
  const RouterSpec* spec = find_router_spec(router);
  return spec ? spec->paper_column : "";
}

std::optional<double> pick(const std::map<int64_t, MoePair>& table, int64_t key, const std::string& router) {
  auto it = table.find(key);
  if (it == table.end()) return std::nullopt;
  if (column_of(router) == "MoE") return it->second.moe;
  if (column_of(router) == "ReMoE") return it->second.remoe;
  return std::nullopt;
}

}  // namespace

std::string paper_router_name(const std::string& router) {
  const std::string column = column_of(router);
  return column.empty() ? router : column;
}

std::optional<double> paper_zero_shot_average(const RunRecord& run) {
  if (run.label != run.router || run.num_experts != 8 || run.topk != 1 || run.granularity != 1) return std::nullopt;
  auto it = kZeroShotAverage.find(run.router);
  return it == kZeroShotAverage.end() ? std::nullopt : std::optional<double>(it->second);
}

std::optional<double> paper_valid_loss(const RunRecord& run) {
  if (!run.compute_matched_to.empty()) return std::nullopt;
  if (run.experiment == "E" && run.topk == 1 && run.granularity == 1) return pick(kScalingE, run.num_experts, run.router);
  if (run.experiment == "G") {
    if (column_of(run.router) == "Dense") {
      if (run.dense_multiplier == 1) return kDense182M;
      if (run.dense_multiplier == 8) return kDenseTimes8;
      return std::nullopt;
    }
    if (run.num_experts == 8 && run.topk == 1) return pick(kScalingG, run.granularity, run.router);
  }
  if (run.experiment == "N" && run.axis_index.count("N") && run.dense_multiplier == 1) {
    const int64_t i = run.axis_index.at("N");
    if (i < 0 || i >= 3) return std::nullopt;
    const std::string column = column_of(run.router);
    if (column == "Dense") return kScalingN[i].dense;
    if (column == "MoE") return kScalingN[i].moe;
    if (column == "ReMoE") return kScalingN[i].remoe;
  }
  if (run.experiment == "k" && run.topk == 1 && run.num_experts == 8 && run.granularity == 1)
    return pick(kScalingE, 8, run.router);
  return std::nullopt;
}

}  // namespace remoe::experiments
