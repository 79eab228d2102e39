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

void Trainer::set_data_parallel(std::shared_ptr<Communicator> dp) {
  REMOE_CHECK(dp != nullptr, "Trainer::set_data_parallel: no communicator");
  dp_ = std::move(dp);
  broadcast_parameters(model_.parameters(), *dp_);
}

void Trainer::set_expert_parallel(int64_t P) {
  REMOE_CHECK(model_.router().expert_parallel, "dist.expert_parallel = ", P, ": router '", model_.router().name,
              "' has no experts to split over ranks (expert parallelism needs a token-dispatching MoE router)");
  ep_ = make_expert_parallel(dp_, P, model_.config().experts());
}

void Trainer::gather_experts() {
  if (ep_) remoe::gather_experts(model_.named_parameters(), optimizer_, *ep_);
}

// Gradients over every replica (data and expert parallel), then the global-norm clip.
double Trainer::reduce_and_clip() {
  if (ep_) return reduce_and_clip_expert_parallel(model_.named_parameters(), *ep_, clip_norm_);
  average_gradients(model_.parameters(), *dp_);  // identical gradients, so an identical norm and update
  return clip_grad_norm(model_.parameters(), clip_norm_);
}

// The step's metrics over every replica: LM loss averaged, router terms and counts summed (each
// rank holds its share of the whole micro-batch's sums), tokens summed. (m.loss is already global.)
void Trainer::reduce_over_replicas(StepMetrics& m, int64_t& active, int64_t& slots) const {
  if (dp_->size() == 1) return;
  std::vector<double> mean_part = {m.lm_loss}, sum_part = {m.aux_loss, m.reg_loss, m.router_loss};
  dp_->all_reduce(mean_part.data(), 1, DType::f64, ReduceOp::mean);
  dp_->all_reduce(sum_part.data(), 3, DType::f64, ReduceOp::sum);
  m.lm_loss = mean_part[0];
  m.aux_loss = sum_part[0];
  m.reg_loss = sum_part[1];
  m.router_loss = sum_part[2];
  std::vector<int64_t> totals = {active, slots, m.tokens};
  for (const std::vector<int64_t>& layer : m.expert_counts) totals.insert(totals.end(), layer.begin(), layer.end());
  dp_->all_reduce(totals.data(), static_cast<int64_t>(totals.size()), DType::i64, ReduceOp::sum);
  active = totals[0], slots = totals[1], m.tokens = totals[2];
  size_t at = 3;
  for (std::vector<int64_t>& layer : m.expert_counts)
    for (int64_t& c : layer) c = totals[at++];
}

StepMetrics Trainer::step(const std::vector<Batch>& micro_batches) {
  REMOE_CHECK(!micro_batches.empty(), "Trainer::step: no micro-batches");
  StepMetrics m;
  m.step = step_;
  const bool adaptive = model_.router().adaptive_lambda;
  m.lambda = adaptive ? controller_.lambda() : 0.0;
  const double scale = 1.0 / static_cast<double>(micro_batches.size());
  int64_t active = 0, slots = 0;
  model_.zero_grad();
  const double replicas = static_cast<double>(dp_->size());
  for (const Batch& global : micro_batches) {
    const Batch b = rank_share(global, *dp_);
    ForwardOutput out = model_.forward(
        b.inputs, ForwardOptions{step_, nullptr, dp_.get(), dp_->rank() * b.inputs.numel(), ep_ ? &*ep_ : nullptr});
    phase_done("forward");
    LossParts parts = compute_loss(model_, out, b.targets, m.lambda, replicas);
    // The micro-batch's loss over every replica: every rank sees the same value and stops alike.
    double total = parts.total.item();
    if (dp_->size() > 1) total = dp_->all_reduce(parts.lm, ReduceOp::mean) + dp_->all_reduce(parts.router_term, ReduceOp::sum);
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
  reduce_over_replicas(m, active, slots);
  m.grad_norm = reduce_and_clip();
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
