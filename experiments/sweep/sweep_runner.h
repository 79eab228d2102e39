// `remoe sweep`: runs an expanded sweep as child processes of the `remoe` binary
// (`remoe train -c <run>/sweep_point.toml -q [--resume]`), each in its own run directory.
//
// Every invocation looks at what is on disk first (sweep_state.h): finished runs are skipped,
// interrupted ones resume from their newest checkpoint, a run that died before its first
// checkpoint is moved aside and restarted. Runs are scheduled on `cores` CPU slots: with
// parallel = 2 two single-thread runs go side by side, with parallel = 1 one run uses every core
// (a resumed run keeps the thread count of its checkpoint, so its bytes stay reproducible). At the
// budget, or on SIGINT/SIGTERM, the children get SIGTERM, write a checkpoint and exit; the next
// invocation resumes them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "experiments/sweep/sweep_file.h"
#include "experiments/sweep/sweep_state.h"

namespace remoe::experiments {

struct SweepOptions {
  std::filesystem::path file;
  std::string scale = "micro";
  int64_t seeds = 0;                 // 0 = the file's [sweep] seeds
  std::string only;                  // glob on run names ("E8-*"); without * ? [ a substring
  double budget_seconds = 0;         // 0 = no limit
  bool dry_run = false;              // print the plan and stop
  std::filesystem::path runs;        // "" = runs/<sweep name>-<scale>
  int64_t parallel = 2;              // runs side by side (each gets cores / parallel threads)
  int64_t cores = 2;                 // CPU slots to fill
  std::filesystem::path exe = "/proc/self/exe";  // the binary whose `train` the children run
  double progress_seconds = 300;     // a progress line per running run this often
  bool measure = true;               // time one step per point for the plan (else: no estimate)
};

struct PlanEntry {
  RunState state;
  double ms_per_step = 0;   // measured (or from the run's own metrics); 0 = unknown
  double seconds_left = 0;  // estimate for what remains of this run
};

struct SweepOutcome {
  int64_t total = 0, finished = 0, failed = 0, waiting = 0, unfinished = 0;
  bool stopped = false;  // the budget ran out or a signal asked to stop
};

// Parses options.file, expands it and inspects every run directory (no training).
std::vector<PlanEntry> make_plan(const SweepOptions& options, const SweepSpec& spec);

// Prints the plan table and its totals.
void print_plan(const std::vector<PlanEntry>& plan, const SweepSpec& spec, const SweepOptions& options, std::ostream& out);

// The whole command: plan, print, then (unless dry_run) run what is missing.
SweepOutcome run_sweep(const SweepOptions& options, std::ostream& out);

// "3h", "90m", "1h30m", "45s", "2.5h" or plain seconds → seconds; throws naming the text.
double parse_duration(const std::string& text);

// The runs directory for the options: options.runs, else runs/<sweep>-<scale>.
std::filesystem::path sweep_runs_dir(const SweepOptions& options, const SweepSpec& spec);

// True when `name` matches the --only pattern (empty matches everything).
bool matches_only(const std::string& name, const std::string& pattern);

// The milliseconds of one training step of `config` on `threads` threads, measured in-process on
// random tokens (median of 2 after a warm-up step). ReMoE is timed as TopK with the same k: fresh
// ReMoE routes near-densely for its first ~100 steps, while the bulk of a run (stage III) costs
// what TopK costs (paper: within −2.3% … +3.9%).
double measure_step_ms(Config config, int64_t vocab_size, int64_t threads);

}  // namespace remoe::experiments
