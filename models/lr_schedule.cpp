#include "models/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace remoe {

LrSchedule LrSchedule::paper(int64_t total_steps) {
  REMOE_CHECK(total_steps > 0, "LrSchedule::paper: total_steps must be > 0, got ", total_steps);
  LrSchedule s;
  s.peak_lr = 5e-4;
  s.min_lr = 5e-5;
  s.warmup_steps = std::llround(0.01 * static_cast<double>(total_steps));
  s.total_steps = total_steps;
  return s;
}

double LrSchedule::lr_at(int64_t step) const {
  REMOE_CHECK(peak_lr >= 0 && min_lr >= 0 && min_lr <= peak_lr, "LrSchedule: need 0 <= min_lr <= peak_lr, got min_lr ",
              min_lr, ", peak_lr ", peak_lr);
  REMOE_CHECK(total_steps > 0 && warmup_steps >= 0 && warmup_steps <= total_steps,
              "LrSchedule: need 0 <= warmup_steps <= total_steps and total_steps > 0, got warmup_steps ",
              warmup_steps, ", total_steps ", total_steps);
  REMOE_CHECK(step >= 0, "LrSchedule::lr_at: step must be >= 0, got ", step);
  if (warmup_steps > 0 && step <= warmup_steps)
    return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (step >= total_steps) return min_lr;
  // Here warmup_steps <= step < total_steps and warmup_steps < total_steps: no division by zero.
  const double ratio = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return min_lr + coeff * (peak_lr - min_lr);
}

}  // namespace remoe
