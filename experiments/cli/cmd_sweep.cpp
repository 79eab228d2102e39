// `remoe sweep FILE`: expands a sweep file (experiments/sweeps/*.toml) into run directories and
// trains what is missing as child `remoe train` processes (experiments/sweep/sweep_runner.h);
// `--pack OUT` instead writes the compact results of the sweep's runs into one tar.gz.
#include <iostream>

#include "experiments/cli/commands.h"
#include "experiments/sweep/pack.h"
#include "experiments/sweep/sweep_runner.h"

namespace remoe::cli {
namespace fs = std::filesystem;

namespace {

struct SweepArgs {
  experiments::SweepOptions options;
  std::string file, budget, runs, pack;
};

// Packs the runs of the sweep that have a directory (finished or not; no checkpoints).
int pack_sweep(const SweepArgs& a) {
  const experiments::SweepSpec spec = experiments::load_sweep(a.options.file);
  const int64_t seeds = a.options.seeds > 0 ? a.options.seeds : spec.seeds;
  const fs::path root = experiments::sweep_runs_dir(a.options, spec);
  std::vector<fs::path> dirs;
  for (const experiments::PlannedRun& r : experiments::expand_sweep(spec, a.options.scale, seeds))
    if (experiments::matches_only(r.name, a.options.only) && fs::exists(root / r.name / "sweep_point.json"))
      dirs.push_back(root / r.name);
  const fs::path index = root / "sweep.json";
  experiments::pack_runs(dirs, spec.name + "-" + a.options.scale, a.pack, fs::exists(index) ? index : fs::path());
  std::cout << "packed " << dirs.size() << " run(s) of " << root.string() << " into " << a.pack << "\n";
  return 0;
}

}  // namespace

Command add_sweep_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("sweep", "run a sweep file: one run per (point, seed), skipping finished runs, resuming interrupted ones");
  auto a = std::make_shared<SweepArgs>();
  sub->add_option("file", a->file, "sweep file (experiments/sweeps/*.toml)")->required();
  sub->add_option("--scale", a->options.scale, "named scale of the file: micro (2 CPU cores), small (one GPU)")->capture_default_str();
  sub->add_option("--seeds", a->options.seeds, "seeds per point (default: the file's)")->check(CLI::Range(1, 1000));
  sub->add_option("--only", a->options.only, "only runs whose name matches (glob, or a substring)");
  sub->add_option("--budget", a->budget, "stop cleanly after this long (3h, 90m, 1h30m); runs checkpoint and resume next time");
  sub->add_flag("--dry-run", a->options.dry_run, "print the plan with time estimates and stop");
  sub->add_option("--runs", a->runs, "directory of the run directories (default runs/<sweep>-<scale>)");
  sub->add_option("--parallel", a->options.parallel,
                  "runs side by side; each gets cores/parallel threads (2 on 2 cores: measured faster, see experiments/sweeps/README.md)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sub->add_option("--cores", a->options.cores, "CPU cores to fill")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--progress-seconds", a->options.progress_seconds, "seconds between progress lines")->capture_default_str();
  sub->add_flag("!--no-measure", a->options.measure, "no step timing for the plan (no time estimate)");
  sub->add_option("--pack", a->pack, "write the compact results (no checkpoints) of the sweep's runs to this .tar.gz and stop");
  return [a]() {
    a->options.file = a->file;
    a->options.runs = a->runs;
    if (!a->budget.empty()) a->options.budget_seconds = experiments::parse_duration(a->budget);
    if (!a->pack.empty()) return pack_sweep(*a);
    const experiments::SweepOutcome o = experiments::run_sweep(a->options, std::cout);
    if (a->options.dry_run) return 0;
    std::cout << "sweep: " << o.finished << "/" << o.total << " finished, " << o.failed << " failed, " << o.waiting
              << " waiting" << (o.stopped ? " (stopped; run the same command again to continue)" : "") << "\n";
    return o.failed > 0 ? 3 : o.stopped ? 130 : 0;
  };
}

}  // namespace remoe::cli
