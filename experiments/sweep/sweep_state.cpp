#include "experiments/sweep/sweep_state.h"

#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/data/dataset.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/throughput.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Missing: return "to run";
    case RunStatus::Resumable: return "to resume";
    case RunStatus::Stale: return "to restart";
    case RunStatus::Finished: return "finished";
    case RunStatus::Failed: return "failed";
    case RunStatus::Waiting: return "waiting";
  }
  return "?";
}

ordered_json read_json(const fs::path& path) {
  std::ifstream in(path);
  REMOE_CHECK(in, "cannot read ", path.string());
  try {
    return ordered_json::parse(in);
  } catch (const std::exception& e) {
    fail(path.string(), " is not valid JSON: ", e.what());
  }
}

namespace {

bool summary_finished(const fs::path& dir) {
  if (!fs::exists(dir / "summary.json")) return false;
  return read_json(dir / "summary.json").value("end", "") == "finished";
}

// The rows of metrics.jsonl of one kind ("train" or "eval"); a torn last line is skipped.
std::vector<ordered_json> metric_rows(const fs::path& run_dir, const std::string& kind) {
  std::vector<ordered_json> rows;
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    ordered_json row = ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_object() && row.value("kind", "") == kind) rows.push_back(std::move(row));
  }
  return rows;
}

void classify_by_files(RunState& s) {
  if (fs::exists(s.dir / "summary.json")) {
    const ordered_json summary = read_json(s.dir / "summary.json");
    const std::string end = summary.value("end", "");
    if (end == "finished" && summary.value("steps", int64_t{-1}) == s.steps_total) {
      s.status = RunStatus::Finished;
      s.steps_done = s.steps_total;
      return;
    }
    if (end == "failed") {
      s.status = RunStatus::Failed;
      s.note = summary.value("message", "");
      return;
    }
  }
  if (auto ckpt = latest_checkpoint(s.dir / "ckpt")) {
    const ordered_json state = read_json(*ckpt / "state.json");
    s.status = RunStatus::Resumable;
    s.steps_done = state.value("step", int64_t{0});
    if (state.contains("extra") && state["extra"].contains("threads")) s.threads = state["extra"]["threads"].get<int64_t>();
    return;
  }
  s.status = fs::exists(s.dir / "metrics.jsonl") ? RunStatus::Stale : RunStatus::Missing;
}

// A finished run with the same config hash (seed included) in a sibling sweep directory.
std::optional<fs::path> find_finished_twin(const fs::path& runs_root, const PlannedRun& run, int64_t steps) {
  const fs::path parent = fs::absolute(runs_root).parent_path();
  if (!fs::is_directory(parent)) return std::nullopt;
  const fs::path self = fs::weakly_canonical(runs_root);
  for (const fs::directory_entry& sweep : fs::directory_iterator(parent)) {
    if (!sweep.is_directory() || fs::weakly_canonical(sweep.path()) == self) continue;
    for (const fs::directory_entry& dir : fs::directory_iterator(sweep.path())) {
      const fs::path point = dir.path() / "sweep_point.json";
      if (fs::is_symlink(dir.path()) || !fs::exists(point)) continue;
      if (read_json(point).value("config_hash", "") != run.config_hash || !summary_finished(dir.path())) continue;
      if (read_json(dir.path() / "summary.json").value("steps", int64_t{-1}) == steps) return dir.path();
    }
  }
  return std::nullopt;
}

}  // namespace

void link_shared_run(const RunState& state) {
  if (state.shared_from.empty() || fs::exists(state.dir)) return;
  fs::create_directories(state.dir.parent_path());
  fs::create_directory_symlink(fs::relative(state.shared_from, fs::absolute(state.dir.parent_path())), state.dir);
}

RunState inspect_run(const PlannedRun& run, const fs::path& runs_root, int64_t threads) {
  RunState s;
  s.run = run;
  s.dir = runs_root / run.name;
  s.threads = threads;
  Config cfg = planned_config(run);
  cfg.finalize();
  s.steps_total = cfg.integer("train.steps");
  if (fs::exists(s.dir / "sweep_point.json")) {
    const ordered_json point = read_json(s.dir / "sweep_point.json");
    const std::string had = point.value("config_hash", "");
    REMOE_CHECK(had == run.config_hash, "sweep: ", s.dir.string(), " was made from another config (hash ", had,
                ", the sweep file now gives ", run.config_hash,
                "): the sweep file changed under it; move that directory away or use another --runs");
    s.steps_total = point.value("steps", s.steps_total);
    s.threads = point.value("threads", threads);
  } else if (!run.compute_matched_to.empty()) {
    const fs::path reference = runs_root / run.compute_matched_to;
    if (!summary_finished(reference)) {
      s.status = RunStatus::Waiting;
      s.note = "waits for " + run.compute_matched_to;
      return s;
    }
    s.steps_total += compute_matched_extra_steps(reference);
  }
  if (!fs::exists(s.dir)) {
    if (auto twin = find_finished_twin(runs_root, run, s.steps_total)) {
      s.status = RunStatus::Finished;
      s.steps_done = s.steps_total;
      s.shared_from = *twin;
      s.note = "trained by " + twin->parent_path().filename().string() + "/" + twin->filename().string();
      return s;
    }
  }
  classify_by_files(s);
  return s;
}

int64_t compute_matched_extra_steps(const fs::path& reference_run_dir) {
  Config cfg;
  cfg.apply_file(reference_run_dir / "config.toml");
  cfg.finalize();
  const ordered_json info = read_json(reference_run_dir / "run.json");
  const ModelConfig model = cfg.model_config(info.at("dataset").at("vocab_size").get<int64_t>());
  const int64_t seq_len = cfg.integer("model.seq_len"), k = cfg.integer("moe.topk") * cfg.integer("moe.granularity");
  const double target = 1.0 - static_cast<double>(cfg.integer("moe.topk")) / static_cast<double>(cfg.integer("moe.num_experts"));
  const double topk_flops = training_flops_per_token(model, seq_len, static_cast<double>(k));
  const std::vector<ordered_json> rows = metric_rows(reference_run_dir, "train");
  REMOE_CHECK(!rows.empty(), "sweep: ", reference_run_dir.string(), " has no train rows in metrics.jsonl to measure its overhead");
  double extra_steps = 0;
  int64_t previous_step = 0;
  for (const ordered_json& row : rows) {
    if (row.at("sparsity").get<double>() >= target - 0.005) break;  // stage III begins
    const int64_t step = row.at("step").get<int64_t>();
    const double active = row.at("active_experts_per_token").get<double>();
    extra_steps += static_cast<double>(step - previous_step) *
                   (training_flops_per_token(model, seq_len, active) - topk_flops) / topk_flops;
    previous_step = step;
  }
  return static_cast<int64_t>(std::ceil(std::max(0.0, extra_steps)));
}

void write_sweep_point(const RunState& state, const SweepSpec& spec, const std::string& scale) {
  fs::create_directories(state.dir);
  Config cfg = planned_config(state.run);
  cfg.set("run.dir", state.dir.parent_path().string());
  cfg.set("run.name", state.run.name);
  cfg.set("train.steps", state.steps_total);
  cfg.set("system.threads", state.threads);
  cfg.finalize();
  std::ofstream(state.dir / "sweep_point.toml") << cfg.to_toml();
  ordered_json keys = ordered_json::object();
  for (const auto& [k, v] : state.run.keys) keys[k] = v;
  const ordered_json point = {{"sweep", spec.name},
                              {"scale", scale},
                              {"experiment", spec.experiment},
                              {"label", state.run.label},
                              {"seed", state.run.seed},
                              {"axis_values", state.run.axis_values},
                              {"axis_index", state.run.axis_index},
                              {"config_hash", state.run.config_hash},
                              {"compute_matched_to", state.run.compute_matched_to},
                              {"steps", state.steps_total},
                              {"threads", state.threads},
                              {"keys", keys}};
  const fs::path tmp = state.dir / "sweep_point.json.tmp";
  std::ofstream(tmp) << point.dump(2) << "\n";
  fs::rename(tmp, state.dir / "sweep_point.json");
}

nlohmann::ordered_json sweep_index(const SweepSpec& spec, const std::string& scale, const std::vector<PlannedRun>& runs) {
  ordered_json list = ordered_json::array();
  for (const PlannedRun& r : runs)
    list.push_back({{"name", r.name}, {"label", r.label}, {"seed", r.seed}, {"axis_values", r.axis_values},
                    {"axis_index", r.axis_index}, {"compute_matched_to", r.compute_matched_to}});
  ordered_json axes = ordered_json::array();
  for (const SweepAxis& a : spec.axes) axes.push_back(a.name);
  return {{"sweep", spec.name}, {"experiment", spec.experiment}, {"scale", scale}, {"description", spec.description},
          {"axes", axes}, {"runs", list}};
}

void write_sweep_index(const fs::path& runs_root, const ordered_json& index) {
  fs::create_directories(runs_root);
  const fs::path tmp = runs_root / "sweep.json.tmp";
  std::ofstream(tmp) << index.dump(2) << "\n";
  fs::rename(tmp, runs_root / "sweep.json");
}

std::optional<double> final_valid_loss(const fs::path& run_dir) {
  const std::vector<ordered_json> rows = metric_rows(run_dir, "eval");
  if (rows.empty()) return std::nullopt;
  return rows.back().at("valid_loss").get<double>();
}

}  // namespace remoe::experiments
