// The stability analysis: how much a run's routing changes between consecutive checkpoints. The
// same fixed held-out tokens are routed by every verified checkpoint of the run; for checkpoints
// i−1 and i the flip rate is Σ_l |M_i − M_{i−1}| / (L·T·E) over the 0/1 routing masks M [T, E] of
// the L MoE layers (metrics.h routing_flips; docs/experiments.md, "Analyses").
#include <fmt/format.h>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/analyze/seed_summary.h"
#include "experiments/train/checkpoint.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// The 0/1 routing masks [T, E] of every MoE layer for the real tokens of `text` (row[p] is the mask
// row of position p, −1 for the EOD in front and the padding); `experts` is set on the first call.
std::vector<std::vector<uint8_t>> heldout_masks(RunModel& m, const HeldoutText& text, const std::vector<int64_t>& row,
                                                int64_t T, int64_t& experts) {
  const int64_t batch = m.cfg.integer("train.batch_size");
  std::vector<std::vector<uint8_t>> masks(static_cast<size_t>(m.model->config().n_layers));
  route_heldout(*m.model, text, batch, m.run,
                [&](size_t l, size_t first, const std::vector<int64_t>& tok, const std::vector<int64_t>& exp, int64_t e) {
                  if (experts == 0) experts = e;
                  REMOE_CHECK(e == experts, "analyze: run ", m.run, ": layer ", l, " has ", e, " experts, not ", experts);
                  std::vector<uint8_t>& mask = masks[l];
                  if (mask.empty()) mask.assign(static_cast<size_t>(T * experts), 0);
                  for (size_t i = 0; i < tok.size(); ++i) {
                    const int64_t r = row[first + static_cast<size_t>(tok[i])];
                    if (r >= 0) mask[static_cast<size_t>(r * experts + exp[i])] = 1;
                  }
                });
  return masks;
}

// Mean of `values[i]` over all pairs, and over the pairs whose later checkpoint is past half of
// training (null when there are none).
std::pair<ordered_json, ordered_json> all_and_late_means(const ordered_json& values, const ordered_json& to,
                                                         int64_t train_steps) {
  double sum = 0, late_sum = 0;
  int64_t late_n = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i].get<double>();
    if (2 * to[i].get<int64_t>() > train_steps) {
      late_sum += values[i].get<double>();
      late_n += 1;
    }
  }
  return {ordered_json(sum / static_cast<double>(values.size())),
          late_n ? ordered_json(late_sum / static_cast<double>(late_n)) : ordered_json(nullptr)};
}

// The run's checkpoints up to train.steps (later ones, of a run resumed with more steps, are
// listed in `skipped`); at least 2 are needed.
std::vector<std::pair<int64_t, fs::path>> stability_checkpoints(const fs::path& run_dir, const std::string& run,
                                                                int64_t train_steps, std::vector<int64_t>& skipped) {
  std::vector<std::pair<int64_t, fs::path>> checkpoints = complete_checkpoints(run_dir / "ckpt");
  std::erase_if(checkpoints, [&](const auto& c) {
    if (c.first <= train_steps) return false;
    skipped.push_back(c.first);
    return true;
  });
  REMOE_CHECK(checkpoints.size() >= 2, "analyze: run ", run, " has ", checkpoints.size(), " verified checkpoint(s) under ",
              (run_dir / "ckpt").string(),
              "; the stability analysis compares consecutive checkpoints and needs at least 2 (train with a small "
              "ckpt.interval and a large ckpt.keep, e.g. experiments/sweeps/stability.toml)");
  return checkpoints;
}

}  // namespace

ordered_json analyze_stability(const fs::path& run_dir, const std::string& key, const std::string& label,
                               int64_t tokens_per_domain) {
  RunModel m = load_run_model(run_dir, "stability");
  const int64_t train_steps = m.cfg.integer("train.steps");
  std::vector<int64_t> skipped;
  const auto checkpoints = stability_checkpoints(run_dir, m.run, train_steps, skipped);

  const data::Shard valid = data::open_dataset_shard(m.dataset, "valid");
  const HeldoutText text = heldout_text(valid, m.dataset.domains.size(), tokens_per_domain, m.cfg.integer("model.seq_len"),
                                      /*cut_last_document=*/true);
  // Position → row of the masks (only real tokens: not the EOD in front or the padding).
  std::vector<int64_t> row(text.tokens.size(), -1);
  int64_t T = 0;
  for (size_t p = 0; p < text.tokens.size(); ++p)
    if (text.domain[p] >= 0) row[p] = T++;
  const int64_t layers = m.model->config().n_layers;

  ordered_json j;
  j["run"] = m.run;
  j["key"] = key;
  j["label"] = label;
  j["router"] = m.router;
  j["layers"] = layers;
  j["tokens"] = T;
  j["tokens_per_domain"] = tokens_per_domain;
  j["train_steps"] = train_steps;
  int64_t experts = 0;
  std::vector<std::vector<uint8_t>> previous;
  ordered_json steps = ordered_json::array(), density = ordered_json::array();
  ordered_json from = ordered_json::array(), to = ordered_json::array(), flip = ordered_json::array(),
               changed = ordered_json::array(), layer_flip = ordered_json::array();
  for (const auto& [step, dir] : checkpoints) {
    load_checkpoint(dir, *m.model, nullptr);
    std::vector<std::vector<uint8_t>> masks = heldout_masks(m, text, row, T, experts);
    double ones = 0;
    for (const auto& mask : masks)
      for (uint8_t v : mask) ones += v;
    steps.push_back(step);
    density.push_back(ones / (static_cast<double>(layers) * static_cast<double>(T) * static_cast<double>(experts)));
    if (!previous.empty()) {
      const RoutingFlips f = routing_flips(previous, masks, experts);
      from.push_back(steps[steps.size() - 2]);
      to.push_back(step);
      flip.push_back(f.flip_rate);
      changed.push_back(f.changed_fraction);
      layer_flip.push_back(f.layer_flip_rate);
    }
    previous = std::move(masks);
  }
  j["experts"] = experts;
  j["checkpoints"] = steps;
  j["density"] = density;
  j["pairs"] = {{"from", from}, {"to", to}, {"flip_rate", flip}, {"changed_fraction", changed}, {"layer_flip_rate", layer_flip}};
  const auto [flip_mean, flip_late] = all_and_late_means(flip, to, train_steps);
  j["mean_flip_rate"] = flip_mean;
  j["late_mean_flip_rate"] = flip_late;
  // The flip rate divides by E; the changed fraction does not, so it compares runs of different E.
  const auto [changed_mean, changed_late] = all_and_late_means(changed, to, train_steps);
  j["mean_changed_fraction"] = changed_mean;
  j["late_mean_changed_fraction"] = changed_late;
  if (!skipped.empty()) j["skipped"] = skipped;
  // A run analysed while it still trains (or that stopped early) has fewer pairs than its finished seeds.
  const std::string note = unfinished_note(steps.back().get<int64_t>(), train_steps);
  if (!note.empty()) j["checkpoint_note"] = note;
  return j;
}

std::string stability_markdown(const std::vector<ordered_json>& results) {
  std::string s = "## Stability\n\n";
  s += "Routing flip rate between consecutive checkpoints on the same held-out tokens: Σ_l |M_i − M_{i−1}| / (L·T·E) "
       "over the 0/1 routing masks M [T, E] of the MoE layers; changed = the fraction of (layer, token) rows whose "
       "expert set differs; late = the mean over the checkpoint pairs ending after half of training.\n\n";
  s += "| run | router | E | tokens | checkpoints | mean flip rate | late flip rate | last flip rate | last changed |\n";
  s += "|---|---|---:|---:|---|---:|---:|---:|---:|\n";
  std::vector<std::string> notes;  // errors and checkpoint notes, under the table
  for (const ordered_json& j : results) {
    if (j.contains("error")) {
      notes.push_back(j["error"].get<std::string>());
      continue;
    }
    const ordered_json& c = j["checkpoints"];
    const ordered_json& p = j["pairs"];
    s += fmt::format("| {} | {} | {} | {} | {} ({}–{}) | {:.5f} | {} | {:.5f} | {:.4f} |\n", j["key"].get<std::string>(),
                     j["router"].get<std::string>(), j["experts"].get<int64_t>(), j["tokens"].get<int64_t>(), c.size(),
                     c.front().get<int64_t>(), c.back().get<int64_t>(), j["mean_flip_rate"].get<double>(),
                     j["late_mean_flip_rate"].is_null() ? std::string("–")
                                                        : fmt::format("{:.5f}", j["late_mean_flip_rate"].get<double>()),
                     p["flip_rate"].back().get<double>(), p["changed_fraction"].back().get<double>());
  }
  for (const ordered_json& j : results)
    if (j.contains("checkpoint_note"))
      notes.push_back(j["key"].get<std::string>() + ": " + j["checkpoint_note"].get<std::string>());
  for (const std::string& e : notes) s += "\n- " + e;
  if (!notes.empty()) s += "\n";
  auto number = [](const char* field) {
    return [field](const ordered_json& j) { return j.contains(field) ? number_of(j[field]) : std::nullopt; };
  };
  s += "\nPer label, mean ± std over seeds (the changed fraction does not divide by E, so it compares runs of "
       "different E):\n\n";
  s += per_label_summary(results, {{"mean flip rate", "{:.5f}", number("mean_flip_rate")},
                                   {"late flip rate", "{:.5f}", number("late_mean_flip_rate")},
                                   {"mean changed", "{:.4f}", number("mean_changed_fraction")},
                                   {"late changed", "{:.4f}", number("late_mean_changed_fraction")}});
  return s;
}

}  // namespace remoe::experiments
