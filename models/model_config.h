// The hyper-parameters of one model (docs/model.md): sizes, the router and its options.
#pragma once
#include <cstdint>
#include <string>

namespace remoe {

struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  // GQA groups; n_heads must be a multiple
  double rope_base = 1e6;
  double norm_eps = 1e-5;
  std::string ffn = "relu";  // = moe.router: a name of the router registry (models/router_registry.h)
  int64_t num_experts = 8;   // E before granularity
  int64_t topk = 1;          // k before granularity
  int64_t granularity = 1;   // G: E·G experts of width d_ffn/G, k·G active
  int64_t ffn_hidden = 0;    // d_ffn of one (G=1) expert; 0 means 4·d_model (the paper)
  int64_t dense_multiplier = 1;  // dense×M: intermediate width multiplied (same-total-params baseline)
  double aux_loss_coeff = 0.01;  // TopK-family load-balancing coefficient (0 = no LB loss)
  bool l1_load_balanced = true;  // ReMoE: Eq. 10–11 (true) or plain L1, Eq. 9 (false)
  bool l1_sum_over_layers = false;  // ReMoE: penalty summed over layers without 1/L (reference code)
  int64_t topk_warmup_k = 0;      // TopK: k during the first topk_warmup_steps steps (0 = no warm-up)
  int64_t topk_warmup_steps = 0;
  bool topk_renormalize = false;  // TopK: gates renormalised over the chosen k (Mixtral, DeepSeek)
  double sparsemixer_eps = 0.01;  // SparseMixer-v2: the jitter ε of its candidate mask (GRIN)
  int64_t lory_segment = 64;      // Lory: segment length in tokens
  uint64_t seed = 0;

  int64_t head_dim() const { return d_model / n_heads; }
  int64_t experts() const { return num_experts * granularity; }  // E·G
  int64_t active() const { return topk * granularity; }          // k·G
  int64_t expert_width() const { return (ffn_hidden > 0 ? ffn_hidden : 4 * d_model) / granularity; }
  void validate() const;  // throws naming the key and the allowed values
};

}  // namespace remoe
