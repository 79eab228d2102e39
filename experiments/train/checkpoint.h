// Checkpoints: `<run>/ckpt/step_<N>/{model.safetensors, optimizer.safetensors, state.json}`.
//
// What survives a kill at any moment (and, with the fsyncs, a power loss):
//   - A checkpoint is written into `ckpt/.tmp-step_<N>-<pid>` (each file fsynced, then the
//     directory) and renamed into place only when complete, so `step_<N>` is never torn.
//   - Re-saving an existing step renames the old `step_<N>` aside to `.old-step_<N>-<pid>` first,
//     then renames the new one into place, then deletes the old one: at every moment one complete
//     copy exists. `recover_checkpoints` (run at the start of train and eval, under the run lock)
//     puts back an aside copy whose replacement never arrived, promotes a complete temp
//     directory, and deletes incomplete ones of dead processes, saying what it did.
//   - `state.json` lists every file's size and FNV-1a hash and is validated field by field;
//     loading checks each tensor's name, dtype and shape against the model and refuses
//     non-finite values, naming the tensor.
// Fault injection for tests: REMOE_CKPT_FAULT=<stage> makes save_checkpoint throw right after
// that stage (model.safetensors, optimizer.safetensors, state.json, aside, swap), leaving the
// directory exactly as a kill at that moment would.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
// Safe to call for a step that already has a checkpoint (see above).
std::filesystem::path save_checkpoint(const std::filesystem::path& ckpt_root, const Module& model,
                                      const AdamW& optimizer, const TrainState& state);

// Loads a checkpoint directory into model/optimizer (every tensor must match by name, dtype and
// shape, and be finite) and returns its state. Throws remoe::Error naming the file and the problem.
TrainState load_checkpoint(const std::filesystem::path& dir, Module& model, AdamW* optimizer);

// Checks a checkpoint directory: state.json's fields (type and presence; the step must match the
// directory's name) and its files' sizes and hashes. Returns the reason if it is not usable.
std::optional<std::string> verify_checkpoint(const std::filesystem::path& dir);

// The newest `step_<N>` that verifies (N ≤ max_step), and why each newer one was passed over.
struct CheckpointChoice {
  std::optional<std::filesystem::path> chosen;
  std::vector<std::string> skipped;  // "step_8: model.safetensors fails its checksum", newest first
  // "" when the newest checkpoint was used; else which one was used instead and why.
  std::string fallback_note() const;
};
CheckpointChoice choose_checkpoint(const std::filesystem::path& ckpt_root,
                                   int64_t max_step = std::numeric_limits<int64_t>::max());

// Every complete, verified `step_<N>` under ckpt_root as (N, directory), oldest first.
std::vector<std::pair<int64_t, std::filesystem::path>> complete_checkpoints(const std::filesystem::path& ckpt_root);

// The newest complete, verified `step_<N>` under ckpt_root, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& ckpt_root);

// Cleans up after writers that died mid-save (the caller holds the run lock): see above. Returns
// one line per action taken.
std::vector<std::string> recover_checkpoints(const std::filesystem::path& ckpt_root);

// Deletes all but the newest `keep` verified checkpoints (a newer one that fails to verify does
// not count, so it never causes a good one to be deleted).
void prune_checkpoints(const std::filesystem::path& ckpt_root, int64_t keep);

}  // namespace remoe::experiments
