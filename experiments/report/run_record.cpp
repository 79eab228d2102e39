#include "experiments/report/run_record.h"

#include <algorithm>
#include <fstream>

#include <toml.hpp>

#include "core/error.h"
#include "experiments/report/eval_table.h"
#include "experiments/sweep/pack.h"
#include "experiments/sweep/sweep_state.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// The config values the report needs, read straight from config.toml (no schema check, so that
// runs written by an older or newer binary still load).
void read_config(const fs::path& file, RunRecord& r) {
  if (!fs::exists(file)) return;
  toml::value doc;
  try {
    doc = toml::parse(file.string());
  } catch (const std::exception& e) {
    fail("report: ", file.string(), " is not valid TOML: ", e.what());
  }
  auto integer = [&](const char* section, const char* key, int64_t fallback) {
    const toml::value v = toml::find_or(doc, section, key, toml::value(fallback));
    return v.is_integer() ? static_cast<int64_t>(v.as_integer()) : fallback;
  };
  const toml::value router = toml::find_or(doc, "moe", "router", toml::value(""));
  if (router.is_string()) r.router = router.as_string().str;
  r.num_experts = integer("moe", "num_experts", 0);
  r.topk = integer("moe", "topk", 0);
  r.granularity = integer("moe", "granularity", 1);
  r.dense_multiplier = integer("model", "dense_multiplier", 1);
  r.steps = integer("train", "steps", 0);
  if (r.seed == 0) r.seed = integer("run", "seed", 0);
}

void read_metrics(const fs::path& file, RunRecord& r) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const ordered_json row = ordered_json::parse(line, nullptr, false);
    if (!row.is_object()) continue;  // a torn last line of a run still in progress
    const int64_t step = row.value("step", int64_t{0});
    const std::string kind = row.value("kind", "");
    if (kind == "train") {
      r.train_loss.emplace_back(step, row.value("loss", 0.0));
      r.sparsity.emplace_back(step, row.value("sparsity", 0.0));
      r.lambda.emplace_back(step, row.value("lambda", 0.0));
      r.lm_loss.emplace_back(step, row.value("lm_loss", 0.0));
      r.router_term.emplace_back(step, row.value("aux_or_reg", 0.0));
    } else if (kind == "eval") {
      r.valid_curve.emplace_back(step, row.value("valid_loss", 0.0));
    }
  }
}

void read_summary(const fs::path& dir, RunRecord& r) {
  if (fs::exists(dir / "summary.json")) {
    const ordered_json s = read_json(dir / "summary.json");
    r.end = s.value("end", "?");
    r.tokens_per_s = s.value("tokens_per_s", 0.0);
    r.final_sparsity = s.value("final_sparsity", 0.0);
    // A run stopped early also writes summary.json; only the configured step count is "finished".
    if (r.end == "finished" && s.value("steps", int64_t{-1}) != r.steps) r.end = "finished early";
  } else if (!r.train_loss.empty()) {
    r.end = "running";
  }
  if (r.end == "finished" && !r.valid_curve.empty()) r.valid_loss = r.valid_curve.back().second;
}

// The per-domain losses of a finished run's last held-out eval (summary.json "last_eval").
void read_final_eval(const fs::path& dir, RunRecord& r) {
  if (r.end != "finished") return;
  const ordered_json s = read_json(dir / "summary.json");
  if (!s.contains("last_eval") || !s["last_eval"].contains("domains")) return;
  EvalScores e;
  try {
    e.step = s["last_eval"].value("step", int64_t{0});
    for (const auto& [domain, d] : s["last_eval"]["domains"].items())
      e.domain_loss.emplace_back(domain, d.at("loss").get<double>());
    e.domain_loss.emplace_back("all", s["last_eval"].at("valid_loss").get<double>());
  } catch (const nlohmann::json::exception& err) {
    fail("report: ", (dir / "summary.json").string(), " has a malformed \"last_eval\": ", err.what());
  }
  r.final_eval = std::move(e);
}

void apply_labels(const ordered_json& j, RunRecord& r) {
  if (j.is_null()) return;
  r.label = j.value("label", r.label);
  r.seed = j.value("seed", r.seed);
  if (j.contains("axis_values")) r.axis_values = j["axis_values"].get<std::map<std::string, std::string>>();
  if (j.contains("axis_index")) r.axis_index = j["axis_index"].get<std::map<std::string, int64_t>>();
  r.compute_matched_to = j.value("compute_matched_to", r.compute_matched_to);
}

void load_sweep_dir(const fs::path& dir, std::vector<RunRecord>& out) {
  if (fs::exists(dir / "sweep.json")) {
    const ordered_json index = read_json(dir / "sweep.json");
    for (const ordered_json& entry : index.at("runs"))
      if (fs::exists(dir / entry.at("name").get<std::string>()))
        out.push_back(load_run(dir / entry.at("name").get<std::string>(), index, entry));
    return;
  }
  std::vector<fs::path> runs;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (fs::exists(e.path() / "sweep_point.json") || fs::exists(e.path() / "summary.json")) runs.push_back(e.path());
  std::sort(runs.begin(), runs.end());
  REMOE_CHECK(!runs.empty(), "report: ", dir.string(), " is not a run directory, a sweep directory or a .tar.gz archive");
  for (const fs::path& run : runs) out.push_back(load_run(run, nullptr, nullptr));
}

}  // namespace

RunRecord load_run(const fs::path& dir, const ordered_json& sweep_header, const ordered_json& index_entry) {
  RunRecord r;
  r.name = dir.filename().string();
  r.label = r.name;
  r.dir = dir;
  ordered_json point;
  if (fs::exists(dir / "sweep_point.json")) point = read_json(dir / "sweep_point.json");
  const ordered_json& header = sweep_header.is_null() ? point : sweep_header;
  if (!header.is_null()) {
    r.sweep = header.value("sweep", r.sweep);
    r.experiment = header.value("experiment", r.experiment);
    r.scale = header.value("scale", r.scale);
  }
  apply_labels(point, r);
  apply_labels(index_entry, r);
  if (!index_entry.is_null()) r.name = index_entry.value("name", r.name);
  read_config(dir / "config.toml", r);
  read_metrics(dir / "metrics.jsonl", r);
  read_summary(dir, r);
  read_final_eval(dir, r);
  read_eval(dir / "eval.json", r);
  return r;
}

std::vector<RunRecord> load_runs(const std::vector<fs::path>& inputs, const fs::path& scratch) {
  std::vector<RunRecord> out;
  int unpacked = 0;
  for (const fs::path& input : inputs) {
    REMOE_CHECK(fs::exists(input), "report: not found: ", input.string());
    if (is_pack_archive(input)) {
      const fs::path dest = unpack_archive(input, scratch / std::to_string(unpacked++));
      std::vector<fs::path> tops;
      for (const fs::directory_entry& e : fs::directory_iterator(dest)) tops.push_back(e.path());
      std::sort(tops.begin(), tops.end());
      for (const fs::path& top : tops) load_sweep_dir(top, out);
    } else if (fs::exists(input / "sweep_point.json") || fs::exists(input / "summary.json")) {
      out.push_back(load_run(input, nullptr, nullptr));
    } else {
      REMOE_CHECK(fs::is_directory(input), "report: ", input.string(), " is not a run directory, a sweep directory or a .tar.gz archive");
      load_sweep_dir(input, out);
    }
  }
  return out;
}

}  // namespace remoe::experiments
