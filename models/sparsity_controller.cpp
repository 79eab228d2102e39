#include "models/sparsity_controller.h"

#include <cmath>

#include "core/error.h"

namespace remoe {

SparsityController::SparsityController(SparsityControllerConfig config) : config_(config), lambda_(config.lambda0) {
  REMOE_CHECK(config_.num_experts > 0 && config_.k > 0 && config_.k <= config_.num_experts,
              "SparsityController: need 0 < k <= num_experts, got k ", config_.k, ", num_experts ",
              config_.num_experts);
  REMOE_CHECK(std::isfinite(config_.lambda0) && config_.lambda0 > 0,
              "SparsityController: lambda0 must be finite and > 0, got ", config_.lambda0);
  REMOE_CHECK(std::isfinite(config_.alpha) && config_.alpha > 1, "SparsityController: alpha must be > 1, got ",
              config_.alpha);
}

double SparsityController::target() const {
  return target_sparsity(config_.k, config_.num_experts);
}

void SparsityController::apply(bool too_dense) {
  lambda_ = too_dense ? lambda_ * config_.alpha : lambda_ / config_.alpha;
  ++updates_;
}

double SparsityController::update(double measured_sparsity) {
  // A NaN would silently take the "divide" branch; reject it (and out-of-range values) instead.
  REMOE_CHECK(measured_sparsity >= 0 && measured_sparsity <= 1,
              "SparsityController::update: measured sparsity must be in [0, 1], got ", measured_sparsity);
  apply(measured_sparsity < target());
  return lambda_;
}

double SparsityController::update_counts(int64_t active, int64_t total) {
  REMOE_CHECK(total > 0 && active >= 0 && active <= total,
              "SparsityController::update_counts: need 0 <= active <= total and total > 0, got active ", active,
              ", total ", total);
  // S < 1 − k/E  ⇔  active/total > k/E  ⇔  active·E > k·total (128-bit: no overflow).
  const __int128 lhs = static_cast<__int128>(active) * config_.num_experts;
  const __int128 rhs = static_cast<__int128>(config_.k) * total;
  apply(lhs > rhs);
  return lambda_;
}

void SparsityController::load_state(const SparsityControllerState& s) {
  REMOE_CHECK(std::isfinite(s.lambda) && s.lambda > 0,
              "SparsityController::load_state: lambda must be finite and > 0, got ", s.lambda);
  REMOE_CHECK(s.updates >= 0, "SparsityController::load_state: updates must be >= 0, got ", s.updates);
  lambda_ = s.lambda;
  updates_ = s.updates;
}

}  // namespace remoe
