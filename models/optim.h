// AdamW, as torch.optim.AdamW computes it (amsgrad off, maximize off), and global gradient-norm
// clipping as torch.nn.utils.clip_grad_norm_. The paper's recipe (docs/model.md): β = (0.9, 0.999),
// eps 1e-8, weight decay 0.01 on 2-D weights (router included) and none on gains, clip 1.0.
//
// One update of parameter p with gradient g, step t (per parameter, counting its updates):
//   p ← p · (1 − lr·wd)                       (decoupled weight decay, only where decay is on)
//   m ← m + (1 − β1)·(g − m)                   (PyTorch's lerp form of β1·m + (1 − β1)·g)
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// The scalar factors are computed in double, the per-element arithmetic in the parameter's dtype.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/module.h"  // NamedTensors

namespace remoe {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW {
 public:
  // Parameters are contiguous floating (f32 or f64) leaves; names must be unique (the module's
  // dotted names). Weight decay is on for parameters of rank >= 2 and off for the rest (gains,
  // 1-D tensors); set_decay overrides it per parameter. State starts at zero, step 0.
  explicit AdamW(NamedTensors params, AdamWOptions options = {});
  // Unnamed parameters are named "0", "1", ... in order.
  explicit AdamW(const std::vector<Tensor>& params, AdamWOptions options = {});

  // One update of every parameter that has a gradient; parameters without one are skipped (their
  // values and state, step count included, stay as they are — PyTorch does the same).
  void step();
  // Drops every parameter's gradient.
  void zero_grad();

  double lr() const { return options_.lr; }
  void set_lr(double lr);  // the trainer sets lr_at(step) before each step()
  const AdamWOptions& options() const { return options_; }

  size_t size() const { return slots_.size(); }
  const std::string& name(size_t i) const;
  bool decays(const std::string& name) const;
  void set_decay(const std::string& name, bool on);
  int64_t step_count(const std::string& name) const;  // number of updates this parameter received

  // The state for checkpoints, three entries per parameter, in parameter order:
  //   "<name>.step" (i64 scalar), "<name>.exp_avg", "<name>.exp_avg_sq" (parameter's shape/dtype).
  // The moment tensors are the live state (no copy): copy them if they must outlive later steps.
  NamedTensors state_tensors() const;
  // Restores state_tensors() output: every entry must be present with the right shape, and no
  // unknown entry may appear (errors name the key). Values are copied in (converting dtype).
  void load_state(const NamedTensors& state);

 private:
  struct Slot {
    std::string name;
    Tensor param;
    bool decay = false;
    int64_t step = 0;
    Tensor exp_avg, exp_avg_sq;
  };
  Slot& slot(const std::string& name, const char* op);
  const Slot& slot(const std::string& name, const char* op) const;

  std::vector<Slot> slots_;
  AdamWOptions options_;
};

// Global L2 norm of the gradients of `params` (those without a gradient are skipped), summed in
// double over every element. If the norm is finite and max_norm / (norm + 1e-6) < 1, every gradient
// is multiplied by that factor (torch.nn.utils.clip_grad_norm_). A non-finite norm is returned
// unchanged and the gradients are left untouched: the caller decides (e.g. skip the step).
// Scaling replaces each .grad by a new tensor rather than writing into it, because autograd may
// hand the same gradient tensor to several leaves (add's backward does): an in-place scale would
// scale such a shared tensor once per parameter.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// clip_grad_norm's two halves, for a norm whose parameters are spread over ranks (expert
// parallelism): Σ g² over the gradients of `params`, and the scaling of them for a given norm.
double gradient_square_sum(const std::vector<Tensor>& params);
void clip_gradients_to(const std::vector<Tensor>& params, double norm, double max_norm);

}  // namespace remoe
