// The LLaMA-style decoder of the paper (docs/model.md): pre-norm blocks
//   h = x + Attn(RMSNorm(x));  out = h + FFN(RMSNorm(h))
// with RoPE + GQA causal attention, SwiGLU FFNs (dense or MoE), final RMSNorm, untied LM head.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/ffn.h"
#include "models/model_config.h"
#include "models/module.h"
#include "models/router_registry.h"

namespace remoe {

struct ForwardOutput {
  Tensor logits;                          // [B·T, V]
  std::vector<RouterOutput> layers;       // one per block whose router routes tokens
};

// Keys and values of the positions already processed, per layer ([B, t, Hkv, D] each, RoPE
// applied), so that decoding a new token attends to them without recomputing them.
struct KVCache {
  std::vector<Tensor> k, v;  // one per layer; undefined before the first call
  int64_t length = 0;        // positions cached
};

// What a forward pass may need besides the tokens (see RouteContext).
struct ForwardOptions {
  int64_t step = RouteContext::kEvaluation;  // the optimizer step being trained; kEvaluation otherwise
  // Inference: the tokens continue the cached positions (RoPE from cache->length), attend to them,
  // and are appended. Only for routers whose spec is token_local (a token's routing is its own).
  KVCache* cache = nullptr;
  // Training on data-parallel replicas: the tokens are this rank's share of each micro-batch, and
  // the routers' load-balancing statistics are summed over the replicas (docs/scaling.md).
  Communicator* dp = nullptr;
  int64_t first_token = 0;  // this rank's first token in the whole micro-batch
  // Training with experts split over ranks (models/expert_parallel.h); null = every expert here.
  const ExpertParallel* ep = nullptr;
};

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t d, double eps);
  Tensor forward(const Tensor& x) const { return rms_norm(x, weight_, eps_); }

 private:
  Tensor weight_;
  double eps_;
};

class Attention : public Module {
 public:
  Attention(const ModelConfig& c, Generator& gen);
  // x [B, T, d]. With a cache (k, v of the earlier positions, or undefined), x holds the next T
  // positions: their keys and values are appended to the cache and they attend to all of it.
  Tensor forward(const Tensor& x, Tensor* k_cache = nullptr, Tensor* v_cache = nullptr) const;

 private:
  int64_t n_heads_, n_kv_heads_, head_dim_;
  double rope_base_;
  Tensor wq_, wk_, wv_, wo_;
};

class Block : public Module {
 public:
  Block(const ModelConfig& c, Generator& gen);
  // x [B, T, d]; ctx carries the token ids [B·T], the step and this block's index.
  Tensor forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing,
                 KVCache* cache = nullptr) const;

 private:
  std::shared_ptr<RMSNorm> attn_norm_, ffn_norm_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<FFN> ffn_;
};

class Transformer : public Module {
 public:
  explicit Transformer(const ModelConfig& c);
  ForwardOutput forward(const Tensor& tokens, ForwardOptions options = {}) const;  // tokens [B, T] i64
  const ModelConfig& config() const { return config_; }
  const RouterSpec& router() const { return *router_; }
  bool is_moe() const { return router_->routes_tokens; }

 private:
  ModelConfig config_;
  const RouterSpec* router_;
  Tensor embed_, lm_head_;
  std::shared_ptr<ModuleList> layers_;
  std::shared_ptr<RMSNorm> final_norm_;
};

// The loss of one micro-batch, split into its parts (docs/routers.md).
struct LossParts {
  Tensor total;        // lm + the router's term (aux, or λ·L_reg); what backward runs on
  double lm = 0;       // the LM cross-entropy (the reported "valid loss")
  double aux = 0;      // Σ_l aux_l (RouterLoss::aux)
  double reg = 0;      // L_reg = mean (or sum) over layers of the per-layer penalty (RouterLoss::regularizer)
  double router_term = 0;    // what the router adds to total: aux, or λ·reg
  int64_t active_pairs = 0;  // Σ_l Σ_t Σ_e 1{routed} (k·T per layer for TopK)
  int64_t routing_slots = 0; // L·T·E: sparsity = routing_sparsity(active_pairs, routing_slots)
};

// lm cross-entropy of logits vs targets [B, T] plus the router's term (its RouterSpec::loss);
// `lambda` weighs L_reg. `router_scale` multiplies the router's term in `total` only (data
// parallelism: each of N ranks holds 1/N of the LM mean but its own share of the router sum, and
// the gradients are averaged, so the ranks back-propagate lm + N·router share).
LossParts compute_loss(const Transformer& model, const ForwardOutput& out, const Tensor& targets, double lambda,
                       double router_scale = 1.0);

}  // namespace remoe
