// The stages analysis: ReMoE's three training stages (the paper's figure of sparsity, λ and loss
// over training; spec §2, §4 (a)): stage I near-dense while λ is tiny, stage II sparsifying as λ grows, stage III
// sparsity held at the target 1 − k/E. Definitions in metrics.h / docs/experiments.md.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "experiments/analyze/analyze.h"
#include "models/router_registry.h"
#include "models/sparsity_controller.h"

namespace remoe::experiments {
using nlohmann::ordered_json;

namespace {

ordered_json opt_json(const std::optional<int64_t>& v) { return v ? ordered_json(*v) : ordered_json(nullptr); }

std::vector<double> values(const Curve& c) {
  std::vector<double> v;
  for (const auto& p : c) v.push_back(p.second);
  return v;
}

}  // namespace

ordered_json analyze_stages(const RunRecord& r, const std::string& key, const StageOptions& options) {
  ordered_json j;
  j["run"] = r.name;
  j["key"] = key;
  j["label"] = r.label;
  j["seed"] = r.seed;
  j["router"] = r.router;
  bool adaptive = false;
  try {
    adaptive = !r.router.empty() && router_spec(r.router).adaptive_lambda;
  } catch (const std::exception&) {
    adaptive = false;  // an unknown router name: not ReMoE
  }
  if (!adaptive) {
    j["applies"] = false;
    j["message"] = fmt::format("stages: does not apply to run {} (router \"{}\" has no adaptive λ; only ReMoE, "
                               "moe.router = relu, goes through the three stages)",
                               r.name, r.router.empty() ? "?" : r.router);
    return j;
  }
  if (r.sparsity.empty()) {
    j["applies"] = false;
    j["message"] = fmt::format("stages: run {} has no \"train\" rows in {}", r.name, (r.dir / "metrics.jsonl").string());
    return j;
  }
  const int64_t G = std::max<int64_t>(1, r.granularity);
  const double target = target_sparsity(r.topk * G, r.num_experts * G);
  std::vector<int64_t> steps;
  for (const auto& p : r.sparsity) steps.push_back(p.first);
  const StageResult s = find_stages(steps, values(r.sparsity), target, options);
  j["applies"] = true;
  j["target"] = target;
  j["num_experts"] = r.num_experts;
  j["topk"] = r.topk;
  j["granularity"] = G;
  j["steps"] = r.steps > 0 ? r.steps : steps.back();
  j["last_logged_step"] = steps.back();
  j["interval"] = s.interval;
  j["window_rows"] = s.window_rows;
  j["stage1_end"] = opt_json(s.stage1_end);
  j["stage3_start"] = opt_json(s.stage3_start);
  j["first_in_band"] = opt_json(s.first_in_band);
  j["out_of_band_fraction"] = s.first_in_band ? ordered_json(s.out_of_band_fraction) : ordered_json(nullptr);
  j["settling_fraction"] =
      s.stage3_start ? ordered_json(static_cast<double>(*s.stage3_start) / static_cast<double>(j["steps"].get<int64_t>()))
                     : ordered_json(nullptr);
  j["stage3_sparsity"] = s.stage3_start ? ordered_json{{"mean", s.stage3_sparsity.mean},
                                                       {"std", s.stage3_sparsity.std},
                                                       {"n", s.stage3_sparsity.n}}
                                        : ordered_json(nullptr);
  j["curves"] = {{"step", steps},
                 {"sparsity", values(r.sparsity)},
                 {"running_mean", s.running_mean},
                 {"lambda", values(r.lambda)},
                 {"lm_loss", values(r.lm_loss)},
                 {"router_term", values(r.router_term)}};
  j["png"] = "stages_" + key + ".png";
  return j;
}

namespace {

std::string step_or_dash(const ordered_json& v) { return v.is_null() ? std::string("–") : std::to_string(v.get<int64_t>()); }

// One run's row of the per-run table.
std::string stage_row(const ordered_json& j) {
  const bool settled = !j["stage3_start"].is_null();
  const bool entered = !j["first_in_band"].is_null();
  return fmt::format(
      "| {} | {} | {:.4f} | {} | {} | {} | {} | {} | {} | {} | {} |\n", j["run"].get<std::string>(),
      j["router"].get<std::string>(), j["target"].get<double>(), j["interval"].get<int64_t>(),
      j["window_rows"].get<int64_t>(), step_or_dash(j["stage1_end"]), step_or_dash(j["first_in_band"]),
      entered ? fmt::format("{:.2f}", j["out_of_band_fraction"].get<double>()) : std::string("–"),
      settled ? step_or_dash(j["stage3_start"]) : std::string("not settled"),
      settled ? fmt::format("{:.1f}%", 100 * j["settling_fraction"].get<double>()) : std::string("–"),
      settled ? fmt::format("{:.4f} ± {:.4f} ({})", j["stage3_sparsity"]["mean"].get<double>(),
                            j["stage3_sparsity"]["std"].get<double>(), j["stage3_sparsity"]["n"].get<int64_t>())
              : std::string("–"));
}

// A label's runs (its seeds), for the per-label table.
struct StageGroup {
  std::vector<double> first, out, settle, mean, std;
  double target = 0;
  int64_t runs = 0, unsettled = 0;
  void add(const ordered_json& j) {
    target = j["target"].get<double>();
    runs += 1;
    if (!j["first_in_band"].is_null()) {
      first.push_back(static_cast<double>(j["first_in_band"].get<int64_t>()));
      out.push_back(j["out_of_band_fraction"].get<double>());
    }
    if (j["stage3_start"].is_null()) {
      unsettled += 1;
      return;
    }
    settle.push_back(static_cast<double>(j["stage3_start"].get<int64_t>()));
    mean.push_back(j["stage3_sparsity"]["mean"].get<double>());
    std.push_back(j["stage3_sparsity"]["std"].get<double>());
  }
};

std::string mean_pm_std(const std::vector<double>& v, const char* format) {
  if (v.empty()) return "–";
  const Stat m = mean_std(v);
  return fmt::format(fmt::runtime(std::string("{:") + format + "} ± {:" + format + "}"), m.mean, m.std);
}

std::string label_table(const std::vector<std::string>& order, const std::map<std::string, StageGroup>& groups) {
  std::string s =
      "\nPer label (by target), mean ± std over its seeds (first entry and out-of-band: the seeds that entered the "
      "band; settling and stage-III sparsity: the seeds that settled):\n\n"
      "| label | target | runs | first in band (step) | rows out of band after it | settled | settling step | "
      "stage-III sparsity mean | stage-III sparsity std (within run) |\n|---|---:|---:|---|---|---:|---|---|---|\n";
  for (const std::string& label : order) {
    const StageGroup& g = groups.at(label);
    s += fmt::format("| {} | {:.4f} | {} | {} | {} | {} | {} | {} | {} |\n", label, g.target, g.runs,
                     mean_pm_std(g.first, ".0f"), mean_pm_std(g.out, ".2f"), g.runs - g.unsettled,
                     mean_pm_std(g.settle, ".0f"), mean_pm_std(g.mean, ".4f"), mean_pm_std(g.std, ".4f"));
  }
  return s;
}

}  // namespace

std::string stages_markdown(const std::vector<ordered_json>& results, const StageOptions& o) {
  std::string s = "## Stages\n\n";
  s += fmt::format(
      "Stage I ends at the first logged row whose sparsity exceeds the running minimum of the rows before it by "
      "{:g} of the distance from that minimum to the target. \"First in band\": the first row whose running mean "
      "of the sparsity (trailing, over the rows covering ≥ {} steps) is within ±{:g} of the target 1 − k/E; \"out "
      "of band after\": the fraction of the later rows whose running mean is outside it again (oscillation). "
      "Stage III starts at the first row from which the running mean stays in the band to the last row (at least "
      "{} rows); settling step = the start of stage III, so one late excursion moves it. Stage-III sparsity: "
      "mean ± std of the logged rows from there on (each row is the mean over its log interval).\n\n",
      o.rise_fraction, o.window_steps, o.band, o.min_stage3_rows);
  s += "| run | router | target | interval | window (rows) | stage I end | first in band | out of band after | "
       "settling step | of training | stage-III sparsity (rows) |\n";
  s += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  std::vector<std::string> skipped;
  std::map<std::string, StageGroup> groups;
  std::vector<std::string> order;
  for (const ordered_json& j : results) {
    if (!j.value("applies", false)) {
      skipped.push_back(j.value("message", ""));
      continue;
    }
    s += stage_row(j);
    const std::string label = j.value("label", j["run"].get<std::string>());
    if (!groups.count(label)) order.push_back(label);
    groups[label].add(j);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](const std::string& x, const std::string& y) { return groups[x].target < groups[y].target; });
  if (!order.empty()) s += label_table(order, groups);
  for (const std::string& m : skipped) s += "\n- " + m;
  if (!skipped.empty()) s += "\n";
  return s;
}

}  // namespace remoe::experiments
