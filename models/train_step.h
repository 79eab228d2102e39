// One optimizer step of training, usable by the runner and by tests: forward and backward over
// the step's micro-batches (gradient accumulation), global grad-norm clipping, AdamW with the
// scheduled learning rate, and the ReMoE λ update from the step's sparsity (docs/routers.md, docs/model.md).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "models/data_parallel.h"
#include "models/lr_schedule.h"
#include "models/optim.h"
#include "models/sparsity_controller.h"
#include "models/transformer.h"

namespace remoe {

struct StepMetrics {
  int64_t step = 0;       // index of the step just taken (0-based)
  double loss = 0;        // total loss (lm + the router's term), mean over micro-batches
  double lm_loss = 0;     // LM cross-entropy, mean over micro-batches
  double aux_loss = 0;    // TopK: Σ_l aux_l
  double reg_loss = 0;    // ReLU: L_reg
  double router_loss = 0; // what the router added to the loss: aux, or λ·L_reg
  double sparsity = 0;    // 1 − active pairs / (L·T·E) over the whole step (MoE only)
  double lambda = 0;      // λ used in this step's loss (before the update)
  double lr = 0;
  double grad_norm = 0;   // before clipping
  int64_t tokens = 0;
  std::vector<std::vector<int64_t>> expert_counts;  // [layer][expert], summed over micro-batches
};

class Trainer {
 public:
  Trainer(Transformer& model, AdamWOptions adamw, LrSchedule schedule, double clip_norm = 1.0,
          double lambda0 = 1e-8, double alpha = 1.2);
  // Trains as one of the data-parallel replicas of `dp` (docs/scaling.md): rank 0's parameters are
  // broadcast now; each step takes this rank's share of every micro-batch's rows, the routers'
  // load-balancing statistics, the gradients, the metrics and the sparsity driving λ are over all
  // replicas, so every rank takes the same step. The optimizer must be fresh or loaded identically.
  void set_data_parallel(std::shared_ptr<Communicator> dp);
  const Communicator& data_parallel() const { return *dp_; }
  // Splits the experts of every MoE layer over groups of P consecutive ranks of the data-parallel
  // communicator (world = DP × EP, models/expert_parallel.h); after set_data_parallel. Each rank
  // still keeps every expert's tensors (checkpoints and evaluations use the whole model) but
  // computes and updates only its own: call gather_experts() before reading the others'.
  void set_expert_parallel(int64_t P);
  bool expert_parallel() const { return ep_.has_value(); }
  // Every rank of the group gets every expert's current weights and AdamW state (collective).
  void gather_experts();
  // Takes one optimizer step over `micro_batches` (the global ones: every rank passes the same).
  // A non-finite loss or gradient norm throws remoe::Error before any weight changes, on every rank.
  StepMetrics step(const std::vector<Batch>& micro_batches);
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t s) { step_ = s; }
  AdamW& optimizer() { return optimizer_; }
  // Called with a phase name ("forward", "loss", "backward", "clip_grad_norm", "adamw") as each
  // phase of step() ends: the benchmark's --breakdown timer. Empty = no call.
  void set_phase_hook(std::function<void(const char*)> hook) { phase_hook_ = std::move(hook); }
  SparsityController& controller() { return controller_; }

 private:
  Transformer& model_;
  AdamW optimizer_;
  LrSchedule schedule_;
  SparsityController controller_;
  double clip_norm_;
  int64_t step_ = 0;
  std::function<void(const char*)> phase_hook_;
  std::shared_ptr<Communicator> dp_ = single_process_communicator();
  std::optional<ExpertParallel> ep_;
  double reduce_and_clip();
  void reduce_over_replicas(StepMetrics& m, int64_t& active, int64_t& slots) const;
  void phase_done(const char* name) const {
    if (phase_hook_) phase_hook_(name);
  }
};

}  // namespace remoe
