// What a planned run's directory says about it, and what the sweep writes there before it starts
// the run: `sweep_point.json` (the sweep, scale, point, seed, axis values, config hash) and
// `sweep_point.toml` (the resolved config the child `remoe train -c` reads).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "experiments/sweep/sweep_file.h"

namespace remoe::experiments {

enum class RunStatus {
  Missing,    // nothing trained yet: start it
  Resumable,  // interrupted with a complete checkpoint: `--resume`
  Stale,      // started but no complete checkpoint: its files are moved aside and it starts over
  Finished,   // summary.json says finished at the configured step count
  Failed,     // summary.json says failed (non-finite loss): left alone, reported
  Waiting,    // a compute-matched run whose ReMoE reference has not finished yet
};

const char* status_name(RunStatus s);

struct RunState {
  PlannedRun run;
  std::filesystem::path dir;
  RunStatus status = RunStatus::Missing;
  int64_t steps_total = 0;   // configured (a compute-matched run: once its reference finished)
  int64_t steps_done = 0;    // from the newest checkpoint / summary
  int64_t threads = 1;       // what a resumed run must keep (the checkpoint's count)
  std::string note;          // e.g. why it is waiting, the failure message
  std::filesystem::path shared_from;  // a finished run of another sweep with the same config and seed
};

// Inspects `<runs_root>/<run.name>`. A run without a directory whose config and seed a sibling
// sweep (another directory next to runs_root) already finished is Finished with shared_from set. Throws when the directory belongs to another config (the sweep
// file changed under it), naming the directory and both hashes. `threads` is what a new run gets.
RunState inspect_run(const PlannedRun& run, const std::filesystem::path& runs_root, int64_t threads);

// Links a run that another sweep already trained (state.shared_from) into this sweep's runs
// directory (a relative symlink), so that it is neither trained twice nor missing from reports.
void link_shared_run(const RunState& state);

// Extra TopK steps that match ReMoE's measured stage I+II overhead: the expert FLOPs ReMoE spent
// above k active experts per token (metrics.jsonl train rows, before sparsity first reaches its
// target within 0.005), in units of one TopK step. Throws if the reference has no train rows.
int64_t compute_matched_extra_steps(const std::filesystem::path& reference_run_dir);

// Writes sweep_point.json and sweep_point.toml into state.dir (created). `sweep`, `scale` and
// `experiment` are recorded for `remoe report`.
void write_sweep_point(const RunState& state, const SweepSpec& spec, const std::string& scale);

// `<runs>/sweep.json`: the sweep's name, experiment, scale and, per run, its label, seed and axis
// values. `remoe report` labels a sweep directory's runs by it (a run shared with another sweep
// carries that sweep's labels in its own sweep_point.json).
nlohmann::ordered_json sweep_index(const SweepSpec& spec, const std::string& scale, const std::vector<PlannedRun>& runs);
void write_sweep_index(const std::filesystem::path& runs_root, const nlohmann::ordered_json& index);

// The finished run's final held-out loss (the last "eval" row of metrics.jsonl), if any.
std::optional<double> final_valid_loss(const std::filesystem::path& run_dir);

// Reads a JSON file (throws naming it when missing or invalid).
nlohmann::ordered_json read_json(const std::filesystem::path& path);

}  // namespace remoe::experiments
