#include "models/train_step.h"

#include <cmath>

namespace remoe {

Trainer::Trainer(Transformer& model, AdamWOptions adamw, LrSchedule schedule, double clip_norm, double lambda0,
                 double alpha)
    : model_(model),
      optimizer_(model.named_parameters(), adamw),
      schedule_(schedule),
      controller_(SparsityControllerConfig{model.config().active(), model.config().experts(), lambda0, alpha}),
      clip_norm_(clip_norm) {}

StepMetrics Trainer::step(const std::vector<Batch>& micro_batches) {
  REMOE_CHECK(!micro_batches.empty(), "Trainer::step: no micro-batches");
  StepMetrics m;
  m.step = step_;
  const bool adaptive = model_.router().adaptive_lambda;
  m.lambda = adaptive ? controller_.lambda() : 0.0;
  const double scale = 1.0 / static_cast<double>(micro_batches.size());
  int64_t active = 0, slots = 0;
  model_.zero_grad();
  for (const Batch& b : micro_batches) {
    ForwardOutput out = model_.forward(b.inputs, ForwardOptions{step_});
    phase_done("forward");
    LossParts parts = compute_loss(model_, out, b.targets, m.lambda);
    double total = parts.total.item();
    REMOE_CHECK(std::isfinite(total), "training: non-finite loss (", total, ") at step ", step_,
                "; weights were not updated");
    phase_done("loss");
    mul(parts.total, scale).backward();  // gradient accumulation: mean over micro-batches
    phase_done("backward");
    m.loss += total * scale;
    m.lm_loss += parts.lm * scale;
    m.aux_loss += parts.aux * scale;
    m.reg_loss += parts.reg * scale;
    m.router_loss += parts.router_term * scale;
    active += parts.active_pairs;
    slots += parts.routing_slots;
    m.tokens += b.inputs.numel();
    if (m.expert_counts.empty()) m.expert_counts.resize(out.layers.size());
    for (size_t l = 0; l < out.layers.size(); ++l) {
      std::vector<int64_t> cnt = out.layers[l].counts.to_vector<int64_t>();
      if (m.expert_counts[l].empty()) m.expert_counts[l].assign(cnt.size(), 0);
      for (size_t e = 0; e < cnt.size(); ++e) m.expert_counts[l][e] += cnt[e];
    }
  }
  m.grad_norm = clip_grad_norm(model_.parameters(), clip_norm_);
  phase_done("clip_grad_norm");
  REMOE_CHECK(std::isfinite(m.grad_norm), "training: non-finite gradient norm at step ", step_,
              "; weights were not updated");
  m.lr = schedule_.lr_at(step_);
  optimizer_.set_lr(m.lr);
  optimizer_.step();
  phase_done("adamw");
  if (slots > 0) {
    m.sparsity = routing_sparsity(active, slots);
    if (adaptive) controller_.update(m.sparsity);  // once per optimizer step (docs/routers.md)
  }
  ++step_;
  return m;
}

}  // namespace remoe
