// The allocation analysis (the paper's dynamic-allocation analysis; spec §4 (b)): how many experts each token
// id activates on held-out text, against how frequent the id is in the training shard.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/analyze/seed_summary.h"

namespace remoe::experiments {
using nlohmann::ordered_json;

namespace {

std::string printable(const std::string& text) {
  std::string s;
  for (char c : text) {
    if (c == '\n') s += "\\n";
    else if (c == '\t') s += "\\t";
    else if (c == '|') s += "\\|";
    else if (c == '`') s += "'";
    else s += c;
  }
  return s;
}

}  // namespace

ordered_json analyze_allocation(const RoutingStats& st, const std::string& key, int64_t min_count) {
  REMOE_CHECK(static_cast<int64_t>(st.train_frequency.size()) == st.vocab, "analyze allocation: no train frequencies");
  ordered_json j;
  j["run"] = st.run;
  j["key"] = key;
  j["router"] = st.router;
  j["checkpoint"] = st.checkpoint;
  j["step"] = st.step;
  if (!st.checkpoint_note.empty()) j["checkpoint_note"] = st.checkpoint_note;
  j["layers"] = st.layers;
  j["min_count"] = min_count;
  std::vector<int64_t> ids;
  for (int64_t id = 0; id < st.vocab; ++id)
    if (st.token_occurrences[static_cast<size_t>(id)] >= min_count) ids.push_back(id);
  auto active = [&](int64_t id) {
    return static_cast<double>(st.token_pairs[static_cast<size_t>(id)]) /
           static_cast<double>(st.token_occurrences[static_cast<size_t>(id)]) / static_cast<double>(st.layers);
  };
  std::vector<double> freq, act;
  ordered_json points = {{"id", ordered_json::array()}, {"train_count", ordered_json::array()},
                         {"heldout_count", ordered_json::array()}, {"active", ordered_json::array()}};
  for (int64_t id : ids) {
    freq.push_back(static_cast<double>(st.train_frequency[static_cast<size_t>(id)]));
    act.push_back(active(id));
    points["id"].push_back(id);
    points["train_count"].push_back(st.train_frequency[static_cast<size_t>(id)]);
    points["heldout_count"].push_back(st.token_occurrences[static_cast<size_t>(id)]);
    points["active"].push_back(act.back());
  }
  j["tokens"] = ids.size();
  const double rho = spearman(freq, act);
  j["spearman"] = std::isnan(rho) ? ordered_json(nullptr) : ordered_json(rho);
  // Deciles of the ids by train frequency (rarest first): mean active experts of each.
  std::vector<size_t> order(ids.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return freq[a] < freq[b]; });
  ordered_json bins = ordered_json::array();
  const size_t n_bins = std::min<size_t>(10, ids.size());
  for (size_t b = 0; b < n_bins; ++b) {
    const size_t lo = b * ids.size() / n_bins, hi = (b + 1) * ids.size() / n_bins;
    std::vector<double> a, f;
    for (size_t i = lo; i < hi; ++i) {
      a.push_back(act[order[i]]);
      f.push_back(freq[order[i]]);
    }
    bins.push_back({{"min_train_count", f.front()}, {"max_train_count", f.back()},
                    {"median_train_count", f[f.size() / 2]}, {"tokens", hi - lo}, {"active", mean_std(a).mean}});
  }
  j["bins"] = bins;
  // The most- and least-served ids (ties: the more frequent on held-out first).
  std::vector<size_t> by_active(ids.size());
  std::iota(by_active.begin(), by_active.end(), size_t{0});
  std::stable_sort(by_active.begin(), by_active.end(), [&](size_t a, size_t b) {
    if (act[a] != act[b]) return act[a] > act[b];
    return st.token_occurrences[static_cast<size_t>(ids[a])] > st.token_occurrences[static_cast<size_t>(ids[b])];
  });
  auto entry = [&](size_t i) {
    const int64_t id = ids[i];
    return ordered_json{{"id", id}, {"text", st.token_text.empty() ? std::string() : st.token_text[static_cast<size_t>(id)]},
                        {"train_count", st.train_frequency[static_cast<size_t>(id)]},
                        {"heldout_count", st.token_occurrences[static_cast<size_t>(id)]}, {"active", act[i]}};
  };
  ordered_json most = ordered_json::array(), least = ordered_json::array();
  const size_t top = std::min<size_t>(10, ids.size());
  for (size_t i = 0; i < top; ++i) most.push_back(entry(by_active[i]));
  for (size_t i = 0; i < top; ++i) least.push_back(entry(by_active[ids.size() - 1 - i]));
  j["most_served"] = most;
  j["least_served"] = least;
  j["points"] = points;
  j["png"] = "allocation_" + key + ".png";
  return j;
}

std::string allocation_markdown(const std::vector<ordered_json>& results) {
  std::string s = "## Allocation\n\n";
  s += "Mean active experts per token id (pairs over all MoE layers / occurrences / layers) on held-out text, against "
       "the id's count in the training shard, over the ids seen at least min_count times on held-out text; Spearman's "
       "rank correlation (average ranks for ties; – when one side is constant, e.g. TopK's fixed k).\n\n";
  s += "Per label, mean ± std over seeds:\n\n";
  s += per_label_summary(results, {{"Spearman ρ(train count, active experts)", "{:.3f}", [](const ordered_json& j) {
                                      return j["spearman"].is_number() ? std::optional<double>(j["spearman"].get<double>())
                                                                       : std::nullopt;
                                    }}});
  for (const ordered_json& j : results) {
    if (j.contains("error")) {
      s += fmt::format("\n- {}\n", j["error"].get<std::string>());
      continue;
    }
    s += fmt::format("\n### {} ({}, step {})\n\n{} token ids with ≥ {} held-out occurrences; Spearman ρ(train count, "
                     "active experts) = {}\n\n",
                     j["run"].get<std::string>(), j["router"].get<std::string>(), j["step"].get<int64_t>(),
                     j["tokens"].get<int64_t>(), j["min_count"].get<int64_t>(),
                     j["spearman"].is_null() ? std::string("–") : fmt::format("{:.3f}", j["spearman"].get<double>()));
    if (j.contains("checkpoint_note")) s += "Note: " + j["checkpoint_note"].get<std::string>() + "\n\n";
    s += "| most served | active | train count | held-out count | least served | active | train count | held-out count |\n";
    s += "|---|---:|---:|---:|---|---:|---:|---:|\n";
    for (size_t i = 0; i < j["most_served"].size(); ++i) {
      const ordered_json &m = j["most_served"][i], &l = j["least_served"][i];
      s += fmt::format("| `{}` | {:.3f} | {} | {} | `{}` | {:.3f} | {} | {} |\n", printable(m["text"].get<std::string>()),
                       m["active"].get<double>(), m["train_count"].get<int64_t>(), m["heldout_count"].get<int64_t>(),
                       printable(l["text"].get<std::string>()), l["active"].get<double>(), l["train_count"].get<int64_t>(),
                       l["heldout_count"].get<int64_t>());
    }
  }
  return s;
}

}  // namespace remoe::experiments
