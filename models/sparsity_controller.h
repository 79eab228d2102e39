// The ReMoE regularisation controller (docs/routers.md, the update after the paper's Eq. 11): after every
// optimizer step, with S the step's measured router sparsity and target 1 − k/E,
//   λ ← λ·α   if S < target   (routing too dense: push harder)
//   λ ← λ/α   otherwise        (sparse enough; equality divides, as the reference code does)
// λ0 = 1e-8 and α = 1.2 in every experiment of the paper. One λ for all layers, no clamp, no
// warm-up; λ (with the update count) is part of the checkpoint.
#pragma once
#include <cstdint>

namespace remoe {

// The one definition of router sparsity (the S_i of docs/routers.md that drives λ): the fraction of the
// (layer, token, expert) slots whose gate is zero, S = 1 − active / slots; and its target 1 − k/E.
inline double routing_sparsity(int64_t active_pairs, int64_t slots) {
  return slots > 0 ? 1.0 - static_cast<double>(active_pairs) / static_cast<double>(slots) : 0.0;
}
inline double target_sparsity(int64_t k, int64_t num_experts) {
  return 1.0 - static_cast<double>(k) / static_cast<double>(num_experts);
}

struct SparsityControllerConfig {
  int64_t k = 1;            // active experts per token on average (k·G with granularity G)
  int64_t num_experts = 8;  // E (E·G with granularity G)
  double lambda0 = 1e-8;
  double alpha = 1.2;
};

// What a checkpoint saves: plain fields, written as JSON numbers by the caller.
struct SparsityControllerState {
  double lambda = 0;
  int64_t updates = 0;  // number of update() calls so far
};

class SparsityController {
 public:
  explicit SparsityController(SparsityControllerConfig config = {});

  // One controller step from the measured sparsity S in [0, 1]; returns the new λ.
  double update(double measured_sparsity);
  // The same from counts: `active` of `total` (layer, token, expert) router entries were > 0, so
  // S = 1 − active/total. The comparison S < 1 − k/E is done exactly in integers
  // (active·E > k·total), free of the rounding of both sides.
  double update_counts(int64_t active, int64_t total);

  double lambda() const { return lambda_; }
  double target() const;  // 1 − k/E
  int64_t updates() const { return updates_; }
  const SparsityControllerConfig& config() const { return config_; }

  SparsityControllerState state() const { return {lambda_, updates_}; }
  void load_state(const SparsityControllerState& s);  // λ must be finite and > 0, updates >= 0

 private:
  void apply(bool too_dense);

  SparsityControllerConfig config_;
  double lambda_;
  int64_t updates_ = 0;
};

}  // namespace remoe
