// A sweep file (experiments/sweeps/*.toml) and its expansion into runs.
//
//   [sweep]                  name, experiment (the paper table the report compares with: N, E, G, k
//                            or none), description, seeds (default count; seeds are 1..seeds)
//   [base]                   config keys of every point ("moe.topk" = 1, or nested [base.moe])
//   [scale.<name>]           config keys of one scale (micro, small, ...), applied after [base]
//   [[axis]]                 the grid is the product of the axes, in file order. An axis is either
//                            `key` + `values` (one config key), or `[[axis.level]]` tables with a
//                            `label`, a `set` table and per-scale `scale.<name>` tables.
//   [[point]]                extra points outside the product: `label`, `set`, `scale.<name>`;
//                            `compute_matched_to = "<label>"` makes a TopK point whose steps grow by
//                            the ReMoE point's measured stage I+II compute overhead (sweep_runner.h).
//
// A run is (point, seed). Its directory name is `<label>-s<seed>`, where the label joins the axis
// labels ("E8-relu"): stable as long as the file keeps its axes. Each run also carries a hash of its
// explicit keys, so that a sweep file edited under an existing run is caught instead of mixed in.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/config/config.h"

namespace remoe::experiments {

// Config keys in the order they were applied ("section.key" → value).
using KeyValues = std::vector<std::pair<std::string, nlohmann::json>>;

struct SweepLevel {
  std::string label;
  KeyValues set;                            // every scale
  std::map<std::string, KeyValues> scale;   // one scale only
};

struct SweepAxis {
  std::string name;
  std::vector<SweepLevel> levels;
};

struct SweepPoint {
  std::string label;
  KeyValues set;
  std::map<std::string, KeyValues> scale;
  std::string compute_matched_to;  // label of the ReMoE point whose overhead this TopK point gets
};

struct SweepSpec {
  std::filesystem::path file;
  std::string name, experiment = "none", description;
  int64_t seeds = 3;
  KeyValues base;
  std::map<std::string, KeyValues> scales;
  std::vector<SweepAxis> axes;
  std::vector<SweepPoint> points;
};

// One (point, seed) of an expanded sweep.
struct PlannedRun {
  std::string name;                 // directory name: <label>-s<seed>
  std::string label;                // the point
  int64_t seed = 0;
  std::map<std::string, std::string> axis_values;  // axis name → level label ("E" → "8")
  std::map<std::string, int64_t> axis_index;       // axis name → the level's position on its axis
  KeyValues keys;                   // every explicit key: base, scale, levels/point, run.seed
  std::string config_hash;          // FNV-1a of `keys` without run.name, run.dir, system.* (and train.steps of a matched point)
  std::string compute_matched_to;   // run name (same seed) of the ReMoE run, or ""
};

// Parses and checks a sweep file: unknown sections or fields, unknown config keys, values of the
// wrong type or out of range, an empty axis, duplicate labels: errors that name the file and the key.
SweepSpec load_sweep(const std::filesystem::path& file);

// Every point × seed for one scale, in grid order (the first axis varies slowest), then the extra
// points. Each run's config is checked (Config::finalize) so that a bad combination fails here.
std::vector<PlannedRun> expand_sweep(const SweepSpec& spec, const std::string& scale, int64_t seeds);

// The run's config: schema defaults, then its keys.
Config planned_config(const PlannedRun& run);

}  // namespace remoe::experiments
