// The training-step benchmark behind `remoe bench train-step`: remoe's Trainer::step on the two
// configurations of the issue "Model and training on CPU" (A and B), for one FFN kind, timed step
// by step. experiments/bench/train_step/compare.py alternates it with the same step in PyTorch.
#pragma once
#include <cstdint>
#include <string>

#include <optional>

#include <nlohmann/json.hpp>

#include "experiments/config/config.h"

namespace remoe::experiments {

struct StepBenchOptions {
  std::string config = "A";      // A or B (ignored when train_config is set)
  // Any model of `remoe train` (its -c file and --section.key=value overrides): the model keys,
  // one micro-batch of train.batch_size × model.seq_len tokens, the dataset's vocabulary (data.dir)
  // or `vocab` when there is none. moe.router is the config's unless router_given.
  std::optional<Config> train_config;
  int64_t vocab = 8192;
  bool router_given = false;
  std::string router = "topk";   // a registered router (as initialised), or relu_target (ReMoE at sparsity 1 − k/E)
  int steps = 20, warmup = 3;    // timed steps after untimed ones
  double lr = 1e-7;              // constant; tiny, so that the routing (the work) stays put
  uint64_t seed = 1234;          // model and batch
  std::string init, save_init;   // read / write the initial weights and the batch (safetensors)
  bool init_only = false;        // stop after --save-init
  std::string precision;          // GEMMs: f32 | bf16; "" = the config's train.precision (f32 for A and B)
  bool breakdown = false;        // time forward / loss / backward / clipping / AdamW separately
  bool serve = false;            // one step per "step" line on stdin, one JSON line each on stdout
  // Under mpirun: the batch is the global one, split over the ranks (data parallel), with each MoE
  // layer's experts over groups of `expert_parallel` ranks; every step's communication is timed.
  int64_t expert_parallel = 1;
};

// Builds the model, runs the steps and returns every measurement (per-step ms, sparsity and loss,
// their medians, model FLOPs per step, phases with `breakdown`, under mpirun the world size and
// each step's communication bytes and seconds) as one JSON object (every rank returns it).
nlohmann::json run_step_bench(const StepBenchOptions& options);

}  // namespace remoe::experiments
