// The feed-forward sub-layer of a block, behind one interface for every router: x [T, d] → y [T, d]
// plus the layer's routing (counts, loss term) as a value. Dense FFNs return no routing.
#pragma once
#include <cstdint>
#include <limits>
#include <functional>
#include <memory>
#include <optional>

#include "models/model_config.h"
#include "models/module.h"
#include "models/moe_dispatch.h"

namespace remoe {

struct ExpertParallel;  // models/expert_parallel.h

// What a layer may need besides x: the token ids (Hash), where rows sit in the batch (Lory's
// segments), the training step (warm-up schedules) and a per-layer random stream (SparseMixer).
struct RouteContext {
  static constexpr int64_t kEvaluation = std::numeric_limits<int64_t>::max();
  Tensor token_ids;   // [T] i64, the input token of each row
  int64_t batch = 1;  // rows of x are batch × seq, row = b·seq + t
  int64_t seq = 0;
  int64_t step = kEvaluation;  // the optimizer step being taken; kEvaluation outside training
  int64_t layer = 0;
  uint64_t seed = 0;  // model seed: random routers draw from (seed, step, layer)
  Communicator* dp = nullptr;  // data-parallel replicas of this micro-batch (shared LB statistics)
  int64_t first_token = 0;     // index of row 0 in the whole micro-batch (this rank's share starts there)
  const ExpertParallel* ep = nullptr;  // experts split over ranks (training only); null = all experts here
  bool training() const { return step != kEvaluation; }
};

class FFN : public Module {
 public:
  // The routing is std::nullopt for a dense FFN.
  virtual Tensor forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing) const = 0;
};

// One SwiGLU network: down(silu(x·gate) * (x·up)). A dense FFN, or one expert.
class SwiGLU : public Module {
 public:
  SwiGLU(int64_t d, int64_t hidden, double out_std, Generator& gen);
  Tensor forward(const Tensor& x) const { return matmul(swiglu(matmul(x, gate), matmul(x, up)), down); }
  Tensor gate, up, down;
};

// The dense baseline: one SwiGLU of width k·d_ffn·M (k = 1 for the plain dense model).
class DenseFFN : public FFN {
 public:
  DenseFFN(const ModelConfig& c, Generator& gen);
  Tensor forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing) const override;

 private:
  std::shared_ptr<SwiGLU> mlp_;
};

// A router's routing of one layer: logits [T, E] (undefined without router weights) → triples.
using RouteFn = std::function<RouterOutput(const Tensor& logits, const RouteContext& ctx)>;

// The MoE layer of every token-dispatching router: logits = x·W_r, the router's RouteFn, then the
// shared dropless dispatch (models/moe_dispatch.h) over E·G SwiGLU experts.
class MoEFFN : public FFN {
 public:
  // with_router = false for routers without weights (Hash): no parameter "router", logits undefined.
  MoEFFN(const ModelConfig& c, Generator& gen, RouteFn route, bool with_router = true);
  Tensor forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing) const override;

 private:
  RouteFn route_;
  Tensor router_;  // [d, E]
  ExpertWeights experts_;
};

}  // namespace remoe
