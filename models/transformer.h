// The LLaMA-style decoder of the paper (spec §1): pre-norm blocks
//   h = x + Attn(RMSNorm(x));  out = h + FFN(RMSNorm(h))
// with RoPE + GQA causal attention, SwiGLU FFNs (dense or MoE), final RMSNorm, untied LM head.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/moe_dispatch.h"
#include "models/module.h"

namespace remoe {

struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  // GQA groups; n_heads must be a multiple
  double rope_base = 1e6;
  double norm_eps = 1e-5;
  std::string ffn = "relu";  // dense | topk | relu
  int64_t num_experts = 8;   // E before granularity
  int64_t topk = 1;          // k before granularity
  int64_t granularity = 1;   // G: E·G experts of width d_ffn/G, k·G active
  int64_t ffn_hidden = 0;    // d_ffn of one (G=1) expert; 0 means 4·d_model (the paper)
  int64_t dense_multiplier = 1;  // dense×M: intermediate width multiplied (same-total-params baseline)
  double aux_loss_coeff = 0.01;  // TopK load-balancing coefficient
  bool l1_load_balanced = true;  // ReMoE: Eq. 10–11 (true) or plain L1, Eq. 9 (false)
  uint64_t seed = 0;

  int64_t head_dim() const { return d_model / n_heads; }
  int64_t experts() const { return num_experts * granularity; }  // E·G
  int64_t active() const { return topk * granularity; }          // k·G
  int64_t expert_width() const { return (ffn_hidden > 0 ? ffn_hidden : 4 * d_model) / granularity; }
  void validate() const;  // throws naming the key and the allowed values
};

// Per-layer router statistics of one forward pass (empty for dense FFNs).
struct LayerRouting {
  Tensor counts;  // [E] i64
  int64_t active_pairs = 0;
  int64_t tokens = 0;
  Tensor aux_loss;  // TopK
  Tensor reg_loss;  // ReLU
};

struct ForwardOutput {
  Tensor logits;                     // [B·T, V]
  std::vector<LayerRouting> layers;  // one per MoE layer
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
  Tensor forward(const Tensor& x) const;  // x [B, T, d]

 private:
  int64_t n_heads_, n_kv_heads_, head_dim_;
  double rope_base_;
  Tensor wq_, wk_, wv_, wo_;
};

// One SwiGLU network: down(silu(x·gate) * (x·up)). A dense FFN, or one expert.
class SwiGLU : public Module {
 public:
  SwiGLU(int64_t d, int64_t hidden, double out_std, Generator& gen);
  Tensor forward(const Tensor& x) const { return matmul(swiglu(matmul(x, gate), matmul(x, up)), down); }
  Tensor gate, up, down;
};

// Dense FFN or MoE layer behind one interface: x [T, d] -> y [T, d] plus routing statistics.
class FFN : public Module {
 public:
  virtual Tensor forward(const Tensor& x, LayerRouting* routing) const = 0;
};

class DenseFFN : public FFN {
 public:
  DenseFFN(const ModelConfig& c, Generator& gen);
  Tensor forward(const Tensor& x, LayerRouting* routing) const override;

 private:
  std::shared_ptr<SwiGLU> mlp_;
};

class MoEFFN : public FFN {
 public:
  MoEFFN(const ModelConfig& c, Generator& gen);
  Tensor forward(const Tensor& x, LayerRouting* routing) const override;
  const Tensor& router_weight() const { return router_; }

 private:
  std::string kind_;  // topk | relu
  int64_t k_;
  double aux_coeff_;
  bool load_balanced_;
  Tensor router_;  // [d, E]
  ExpertWeights experts_;
};

class Block : public Module {
 public:
  Block(const ModelConfig& c, Generator& gen);
  Tensor forward(const Tensor& x, LayerRouting* routing) const;  // x [B, T, d]

 private:
  std::shared_ptr<RMSNorm> attn_norm_, ffn_norm_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<FFN> ffn_;
};

class Transformer : public Module {
 public:
  explicit Transformer(const ModelConfig& c);
  ForwardOutput forward(const Tensor& tokens) const;  // tokens [B, T] i64
  const ModelConfig& config() const { return config_; }
  bool is_moe() const { return config_.ffn != "dense"; }

 private:
  ModelConfig config_;
  Tensor embed_, lm_head_;
  std::shared_ptr<ModuleList> layers_;
  std::shared_ptr<RMSNorm> final_norm_;
};

// The loss of one micro-batch, split into its parts (spec §2).
struct LossParts {
  Tensor total;        // lm + aux (topk) or lm + λ·L_reg (relu); what backward runs on
  double lm = 0;       // the LM cross-entropy (the reported "valid loss")
  double aux = 0;      // Σ_l aux_l (topk)
  double reg = 0;      // L_reg = mean over layers of the per-layer penalty (relu)
  int64_t active_pairs = 0;  // Σ_l Σ_t Σ_e 1{R > 0} (or k·T per layer for topk)
  int64_t routing_slots = 0; // L·T·E: sparsity = 1 − active_pairs / routing_slots
};

// lm cross-entropy of logits vs targets [B, T] plus the router terms; `lambda` weighs L_reg.
LossParts compute_loss(const Transformer& model, const ForwardOutput& out, const Tensor& targets, double lambda);

}  // namespace remoe
