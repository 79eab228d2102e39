// Checkpoints: `<run>/ckpt/step_<N>/{model.safetensors, optimizer.safetensors, state.json}`.
// A checkpoint is written into `ckpt/.tmp-step_<N>` and renamed into place only when complete, so
// a crash never leaves a torn `step_<N>`; `state.json` lists every file's size and FNV-1a hash, and
// loading verifies them. `latest_checkpoint` skips temp directories and anything that fails to
// verify, so `--resume` always continues from the newest complete checkpoint.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "models/optim.h"
#include "models/sparsity_controller.h"
#include "models/transformer.h"

namespace remoe::experiments {

struct TrainState {
  int64_t step = 0;                      // optimizer steps completed (= the data cursor)
  SparsityControllerState controller;    // λ and its update count
  uint64_t data_seed = 0;                // BatchSampler seed
  nlohmann::ordered_json extra;          // anything else the runner wants back (e.g. best loss)
};

// Writes a checkpoint of `model`, `optimizer` and `state` under ckpt_root; returns its directory.
std::filesystem::path save_checkpoint(const std::filesystem::path& ckpt_root, const Module& model,
                                      const AdamW& optimizer, const TrainState& state);

// Loads a checkpoint directory into model/optimizer (every tensor must match by name and shape)
// and returns its state. Throws remoe::Error naming the file and the problem.
TrainState load_checkpoint(const std::filesystem::path& dir, Module& model, AdamW* optimizer);

// Checks a checkpoint directory's files against state.json (sizes + hashes); the reason if not.
std::optional<std::string> verify_checkpoint(const std::filesystem::path& dir);

// The newest complete, verified `step_<N>` under ckpt_root, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& ckpt_root);

// Deletes all but the newest `keep` complete checkpoints.
void prune_checkpoints(const std::filesystem::path& ckpt_root, int64_t keep);

}  // namespace remoe::experiments
