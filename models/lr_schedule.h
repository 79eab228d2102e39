// The learning-rate schedule of the paper (docs/model.md): linear warm-up from 0 to the peak, then
// cosine decay to min_lr, constant afterwards. Megatron-LM's OptimizerParamScheduler (the
// reference code is a Megatron fork), with its step convention:
//
//   `step` = the number of optimizer steps already taken (0-based: the first update uses
//   lr_at(0), the update after s completed steps uses lr_at(s)).
//   warm-up   0 <= step <= W:  peak · step / W          (lr_at(0) = 0, lr_at(W) = peak)
//   cosine    W <  step <  N:  min + (peak − min) · ½(1 + cos(π·(step − W)/(N − W)))
//   after     step >= N:       min                      (lr_at(N) = min)
// with W = warmup_steps, N = total_steps. Like Megatron, the very first update therefore has lr 0
// (it only fills Adam's moments); nanoGPT's newer (step+1)/(W+1) variant avoids that, we keep
// Megatron's. With W = 0 there is no warm-up: lr_at(0) = peak.
#pragma once
#include <cstdint>

namespace remoe {

struct LrSchedule {
  double peak_lr = 5e-4;
  double min_lr = 5e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // The paper's schedule for a run of total_steps: peak 5e-4, warm-up over 1% of the steps
  // (rounded to nearest), cosine to 5e-5.
  static LrSchedule paper(int64_t total_steps);

  // Validates the fields (throws remoe::Error naming the bad one) and returns the learning rate
  // for the update after `step` completed steps (step >= 0).
  double lr_at(int64_t step) const;
};

}  // namespace remoe
