// `remoe train`: one run = one directory `<run.dir>/<run.name>/` (design.md, "The runner"):
//   config.toml     the resolved configuration (every key, after preset, file and overrides)
//   run.json        argv, git sha, compiler, device, threads, seed, parameter counts, GEMM peak
//   metrics.jsonl   one JSON object per log interval / evaluation (the source of truth)
//   train.log       the status lines as printed
//   ckpt/step_N/    checkpoints (checkpoint.h); the newest `ckpt.keep` are kept
//   summary.json    final numbers (written at the end, also after an interrupt or a failure)
//   lock            flock'ed by the one process that trains (or evaluates) the run (run_lock.h)
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "experiments/config/config.h"
#include "models/transformer.h"

namespace remoe::experiments {

struct RunOptions {
  Config config;
  // Continue from the newest checkpoint that verifies. Refuses a config that differs from the
  // run's config.toml (keys, both values listed) except in the keys of resume_changing, and never
  // in a key that changes the model or the data (run.seed, data.dir, model.*, moe.*,
  // train.batch_size, train.micro_batches). A run killed before its first checkpoint starts over
  // at step 0; a finished run is left as it is (RunEnd::Finished, message says so).
  bool resume = false;
  std::vector<std::string> resume_changing;  // e.g. {"train.steps", "eval.interval"}
  bool fresh = false;                // delete what the run directory holds and start over
  std::vector<std::string> argv;     // recorded in run.json
  bool quiet = false;                // no status lines on stdout (still in train.log)
  // Test hook: called before each optimizer step (e.g. to inject a NaN into a weight).
  std::function<void(int64_t step, Transformer& model)> before_step;
};

enum class RunEnd { Finished, Interrupted, Failed };

struct RunResult {
  RunEnd end = RunEnd::Finished;
  std::filesystem::path dir;
  int64_t steps_done = 0;
  std::string message;  // why it stopped, for Interrupted / Failed
};

// Trains as configured; under mpirun (world_communicator() of N > 1 ranks) data-parallel over the
// ranks with train.batch_size the global batch (a multiple of N): rank 0 alone locks and writes the
// run directory, a resume loads rank 0's choice of checkpoint on every rank, a signal to any rank
// stops all at the same step, and every rank returns the same RunEnd. Returns normally for Finished / Interrupted (SIGINT/SIGTERM/SIGHUP write
// a checkpoint first) / Failed (a non-finite loss: the last good checkpoint is kept untouched; a
// data file that changed under the run, or a failed evaluation: a checkpoint of the trained steps
// is written first). Throws remoe::Error for bad configuration or data found before training, and
// when another process holds the run directory.
RunResult run_training(RunOptions options);

// Set by the SIGINT/SIGTERM/SIGHUP handler that run_training installs; checked between steps.
std::atomic<bool>& stop_requested();

}  // namespace remoe::experiments
