// `remoe train`: one run = one directory `<run.dir>/<run.name>/` (design.md, "The runner"):
//   config.toml     the resolved configuration (every key, after preset, file and overrides)
//   run.json        argv, git sha, compiler, device, threads, seed, parameter counts, GEMM peak
//   metrics.jsonl   one JSON object per log interval / evaluation (the source of truth)
//   train.log       the status lines as printed
//   ckpt/step_N/    checkpoints (checkpoint.h); the newest `ckpt.keep` are kept
//   summary.json    final numbers (written at the end, also after an interrupt or a failure)
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
  bool resume = false;               // continue from the newest complete checkpoint
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

// Trains as configured. Returns normally for Finished / Interrupted (SIGINT/SIGTERM write a
// checkpoint first) / Failed (a non-finite loss: the last good checkpoint is kept untouched).
// Throws remoe::Error for bad configuration or data.
RunResult run_training(RunOptions options);

// Set by the SIGINT/SIGTERM handler that run_training installs; checked between steps.
std::atomic<bool>& stop_requested();

}  // namespace remoe::experiments
