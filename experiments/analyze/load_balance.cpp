// The load_balance analysis: how evenly a trained run spreads held-out tokens over its experts,
// per MoE layer (the paper's comparison of ReMoE with and without the load-balancing term of the
// L1 penalty, Eq. 10 vs Eq. 9, and of TopK with and without its aux loss). Definitions in
// metrics.h (load_imbalance) and docs/experiments.md, "Analyses".
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/analyze/seed_summary.h"
#include "models/sparsity_controller.h"

namespace remoe::experiments {
using nlohmann::ordered_json;

namespace {

ordered_json number_or_null(double v) { return std::isnan(v) ? ordered_json(nullptr) : ordered_json(v); }

std::string fixed(const ordered_json& v, const char* format) {
  return v.is_null() ? std::string("–") : fmt::format(fmt::runtime(format), v.get<double>());
}

}  // namespace

ordered_json analyze_load_balance(const RoutingStats& st, const std::string& key, const std::string& label) {
  REMOE_CHECK(st.layers > 0 && static_cast<int64_t>(st.pairs.size()) == st.layers, "analyze load_balance: run ", st.run,
              " has no routed layers");
  ordered_json j;
  j["run"] = st.run;
  j["key"] = key;
  j["label"] = label;
  j["router"] = st.router;
  j["checkpoint"] = st.checkpoint;
  j["step"] = st.step;
  if (!st.checkpoint_note.empty()) j["checkpoint_note"] = st.checkpoint_note;
  j["layers"] = st.layers;
  j["experts"] = st.experts;
  j["topk"] = st.topk;
  j["granularity"] = st.granularity;
  j["target_sparsity"] = target_sparsity(st.topk * st.granularity, st.experts);
  int64_t tokens = 0;
  for (int64_t t : st.domain_tokens) tokens += t;
  j["tokens"] = tokens;
  ordered_json load = ordered_json::array(), pairs = ordered_json::array(), sparsity = ordered_json::array(),
               active = ordered_json::array(), max_over_mean = ordered_json::array(),
               min_over_mean = ordered_json::array(), cv = ordered_json::array();
  double cv_sum = 0, mom_sum = 0;
  int64_t counted = 0;
  for (const auto& layer : st.pairs) {
    std::vector<double> counts(static_cast<size_t>(st.experts), 0.0);
    for (const auto& domain : layer)
      for (size_t e = 0; e < domain.size(); ++e) counts[e] += static_cast<double>(domain[e]);
    double total = 0;
    for (double c : counts) total += c;
    std::vector<double> fraction = counts;
    if (total > 0)
      for (double& f : fraction) f /= total;
    load.push_back(fraction);
    pairs.push_back(static_cast<int64_t>(total));
    const double slots = static_cast<double>(tokens) * static_cast<double>(st.experts);
    sparsity.push_back(slots > 0 ? 1.0 - total / slots : 0.0);
    active.push_back(tokens > 0 ? total / static_cast<double>(tokens) : 0.0);
    const LoadImbalance im = load_imbalance(counts);
    max_over_mean.push_back(number_or_null(im.max_over_mean));
    min_over_mean.push_back(number_or_null(im.min_over_mean));
    cv.push_back(number_or_null(im.cv));
    if (!std::isnan(im.cv)) {
      cv_sum += im.cv;
      mom_sum += im.max_over_mean;
      counted += 1;
    }
  }
  j["load"] = load;
  j["pairs"] = pairs;
  j["sparsity"] = sparsity;
  j["active_experts"] = active;
  j["max_over_mean"] = max_over_mean;
  j["min_over_mean"] = min_over_mean;
  j["cv"] = cv;
  j["mean_cv"] = counted ? ordered_json(cv_sum / static_cast<double>(counted)) : ordered_json(nullptr);
  j["mean_max_over_mean"] = counted ? ordered_json(mom_sum / static_cast<double>(counted)) : ordered_json(nullptr);
  j["png"] = "load_balance_" + key + ".png";
  return j;
}

std::string load_balance_markdown(const std::vector<ordered_json>& results) {
  std::string s = "## Load balance\n\n";
  s += "Per MoE layer, on held-out text with the final checkpoint: each expert's share of the layer's routed "
       "(token, expert) pairs; the imbalance max/mean and the coefficient of variation (population std / mean) of "
       "the per-expert pair counts (balanced: 1 and 0; all on one expert: E and sqrt(E − 1)); the sparsity "
       "1 − pairs / (T·E) against the target 1 − k/E.\n\n";
  s += "| run | router | step | tokens | target | sparsity per layer | max/mean per layer | CV per layer | mean max/mean | mean CV |\n";
  s += "|---|---|---:|---:|---:|---|---|---|---:|---:|\n";
  std::vector<std::string> notes;
  for (const ordered_json& j : results) {
    if (j.contains("error")) {
      notes.push_back(j["error"].get<std::string>());
      continue;
    }
    auto list = [](const ordered_json& values, const char* format) {
      std::string out;
      for (const auto& v : values) out += (out.empty() ? "" : " · ") + fixed(v, format);
      return out;
    };
    s += fmt::format("| {} | {} | {} | {} | {:.4f} | {} | {} | {} | {} | {} |\n", j["key"].get<std::string>(),
                     j["router"].get<std::string>(), j["step"].get<int64_t>(), j["tokens"].get<int64_t>(),
                     j["target_sparsity"].get<double>(), list(j["sparsity"], "{:.3f}"), list(j["max_over_mean"], "{:.2f}"),
                     list(j["cv"], "{:.3f}"), fixed(j["mean_max_over_mean"], "{:.2f}"), fixed(j["mean_cv"], "{:.3f}"));
    if (j.contains("checkpoint_note"))
      notes.push_back(j["key"].get<std::string>() + ": " + j["checkpoint_note"].get<std::string>());
  }
  for (const std::string& n : notes) s += "\n- " + n;
  if (!notes.empty()) s += "\n";
  s += "\nPer label, mean ± std over seeds of the per-run means over layers, and of the sparsity's spread (max − min) "
       "across layers:\n\n";
  s += per_label_summary(results, {
      {"mean max/mean", "{:.2f}", [](const ordered_json& j) { return number_of(j["mean_max_over_mean"]); }},
      {"mean CV", "{:.3f}", [](const ordered_json& j) { return number_of(j["mean_cv"]); }},
      {"sparsity (mean over layers)", "{:.3f}", [](const ordered_json& j) { return mean_of(j["sparsity"]); }},
      {"sparsity spread across layers", "{:.3f}", [](const ordered_json& j) { return spread_of(j["sparsity"]); }}});
  return s;
}

}  // namespace remoe::experiments
