// The domains analysis (the paper's domain-specialisation analysis; spec §4 (c)): per MoE layer, which experts each
// domain's held-out tokens are routed to, how spread that is (entropy), and how many experts a
// token of each domain activates.
#include <cmath>

#include <fmt/format.h>

#include "experiments/analyze/analyze.h"
#include "experiments/analyze/seed_summary.h"

namespace remoe::experiments {
using nlohmann::ordered_json;

ordered_json analyze_domains(const RoutingStats& st, const std::string& key) {
  ordered_json j;
  j["run"] = st.run;
  j["key"] = key;
  j["router"] = st.router;
  j["checkpoint"] = st.checkpoint;
  j["step"] = st.step;
  if (!st.checkpoint_note.empty()) j["checkpoint_note"] = st.checkpoint_note;
  j["layers"] = st.layers;
  j["experts"] = st.experts;
  // Only the domains that had held-out tokens.
  std::vector<size_t> kept;
  for (size_t d = 0; d < st.domains.size(); ++d)
    if (st.domain_tokens[d] > 0) kept.push_back(d);
  ordered_json names = ordered_json::array(), tokens = ordered_json::array();
  for (size_t d : kept) {
    names.push_back(st.domains[d]);
    tokens.push_back(st.domain_tokens[d]);
  }
  j["domains"] = names;
  j["tokens"] = tokens;
  ordered_json fractions = ordered_json::array(), entropy = ordered_json::array();
  std::vector<double> mean_entropy(kept.size(), 0.0), active(kept.size(), 0.0);
  for (int64_t l = 0; l < st.layers; ++l) {
    std::vector<std::vector<double>> counts;
    for (size_t d : kept) {
      const std::vector<int64_t>& c = st.pairs[static_cast<size_t>(l)][d];
      counts.emplace_back(c.begin(), c.end());
    }
    const std::vector<std::vector<double>> f = row_fractions(counts);
    ordered_json layer_h = ordered_json::array();
    for (size_t i = 0; i < kept.size(); ++i) {
      const double h = entropy_bits(counts[i]);
      layer_h.push_back(h);
      mean_entropy[i] += h / static_cast<double>(st.layers);
      double pairs = 0;
      for (double v : counts[i]) pairs += v;
      active[i] += pairs / static_cast<double>(st.domain_tokens[kept[i]]) / static_cast<double>(st.layers);
    }
    fractions.push_back(f);
    entropy.push_back(layer_h);
  }
  j["fractions"] = fractions;
  j["entropy_bits"] = entropy;
  j["max_entropy_bits"] = st.experts > 0 ? std::log2(static_cast<double>(st.experts)) : 0.0;
  j["mean_entropy_bits"] = mean_entropy;
  j["active_experts"] = active;
  j["png"] = "domains_" + key + ".png";
  return j;
}

std::string domains_markdown(const std::vector<ordered_json>& results) {
  std::string s = "## Domains\n\n";
  s += "Held-out tokens per domain routed by the final checkpoint: the entropy (bits) of each domain's distribution "
       "of routed pairs over the experts, averaged over the MoE layers (uniform = log2 E), and the mean number of "
       "experts a token activates (averaged over layers). Heat maps per layer in the PNGs.\n\n";
  s += "Per label, mean ± std over seeds of each run's unweighted mean over domains, and of the spread (max − min) "
       "across domains:\n\n";
  s += per_label_summary(results, {
      {"entropy (bits)", "{:.3f}", [](const ordered_json& j) { return mean_of(j["mean_entropy_bits"]); }},
      {"entropy spread across domains", "{:.3f}", [](const ordered_json& j) { return spread_of(j["mean_entropy_bits"]); }},
      {"uniform entropy", "{:.3f}", [](const ordered_json& j) { return std::optional<double>(j["max_entropy_bits"].get<double>()); }},
      {"active experts / token", "{:.3f}", [](const ordered_json& j) { return mean_of(j["active_experts"]); }},
      {"active-experts spread across domains", "{:.3f}", [](const ordered_json& j) { return spread_of(j["active_experts"]); }}});
  for (const ordered_json& j : results) {
    if (j.contains("error")) {
      s += fmt::format("\n- {}\n", j["error"].get<std::string>());
      continue;
    }
    s += fmt::format("\n### {} ({}, step {}, {} layers, E = {}, uniform entropy {:.3f} bits)\n\n", j["run"].get<std::string>(),
                     j["router"].get<std::string>(), j["step"].get<int64_t>(), j["layers"].get<int64_t>(),
                     j["experts"].get<int64_t>(), j["max_entropy_bits"].get<double>());
    if (j.contains("checkpoint_note")) s += "Note: " + j["checkpoint_note"].get<std::string>() + "\n\n";
    s += "| domain | tokens | entropy (bits, mean over layers) | active experts / token |\n|---|---:|---:|---:|\n";
    for (size_t d = 0; d < j["domains"].size(); ++d)
      s += fmt::format("| {} | {} | {:.3f} | {:.3f} |\n", j["domains"][d].get<std::string>(), j["tokens"][d].get<int64_t>(),
                       j["mean_entropy_bits"][d].get<double>(), j["active_experts"][d].get<double>());
  }
  return s;
}

}  // namespace remoe::experiments
