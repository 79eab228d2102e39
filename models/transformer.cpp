#include "models/transformer.h"

#include <cmath>

namespace remoe {
namespace {

Tensor new_weight(const Shape& shape, double std, Generator& gen) {
  Tensor t = empty(shape);
  init_normal(t, std, gen);
  return t;
}

}  // namespace

void ModelConfig::validate() const {
  REMOE_CHECK(ffn == "dense" || ffn == "topk" || ffn == "relu", "model.ffn = '", ffn,
              "' is not one of dense, topk, relu");
  REMOE_CHECK(d_model > 0 && n_layers > 0 && vocab_size > 0, "model: d_model, n_layers and vocab_size must be > 0");
  REMOE_CHECK(n_heads > 0 && d_model % n_heads == 0, "model.n_heads = ", n_heads, " must divide d_model = ", d_model);
  REMOE_CHECK(head_dim() % 2 == 0, "model: head_dim = d_model / n_heads = ", head_dim(), " must be even (RoPE)");
  REMOE_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "model.n_kv_heads = ", n_kv_heads,
              " must divide n_heads = ", n_heads);
  REMOE_CHECK(granularity >= 1, "moe.granularity = ", granularity, " must be >= 1");
  REMOE_CHECK((ffn_hidden > 0 ? ffn_hidden : 4 * d_model) % granularity == 0, "moe.granularity = ", granularity,
              " must divide the FFN width ", (ffn_hidden > 0 ? ffn_hidden : 4 * d_model));
  REMOE_CHECK(dense_multiplier >= 1, "model.dense_multiplier = ", dense_multiplier, " must be >= 1");
  if (ffn != "dense") {
    REMOE_CHECK(num_experts >= 1, "moe.num_experts = ", num_experts, " must be >= 1");
    REMOE_CHECK(topk >= 1 && topk <= num_experts, "moe.topk = ", topk, " must be in [1, num_experts = ", num_experts, "]");
  }
}

RMSNorm::RMSNorm(int64_t d, double eps) : eps_(eps) { weight_ = register_parameter("weight", ones({d})); }

Attention::Attention(const ModelConfig& c, Generator& gen)
    : n_heads_(c.n_heads), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim()), rope_base_(c.rope_base) {
  const int64_t d = c.d_model, hd = c.head_dim();
  wq_ = register_parameter("wq", new_weight({d, c.n_heads * hd}, kInitStd, gen));
  wk_ = register_parameter("wk", new_weight({d, c.n_kv_heads * hd}, kInitStd, gen));
  wv_ = register_parameter("wv", new_weight({d, c.n_kv_heads * hd}, kInitStd, gen));
  wo_ = register_parameter("wo", new_weight({c.n_heads * hd, d}, output_init_std(c.n_layers), gen));
}

Tensor Attention::forward(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q = rope(reshape(matmul(x, wq_), {B, T, n_heads_, head_dim_}), rope_base_);
  Tensor k = rope(reshape(matmul(x, wk_), {B, T, n_kv_heads_, head_dim_}), rope_base_);
  Tensor v = reshape(matmul(x, wv_), {B, T, n_kv_heads_, head_dim_});
  Tensor o = attention(q, k, v, /*causal=*/true);  // [B, T, Hq, D]
  return matmul(reshape(o, {B, T, n_heads_ * head_dim_}), wo_);
}

SwiGLU::SwiGLU(int64_t d, int64_t hidden, double out_std, Generator& gen) {
  gate = register_parameter("w_gate", new_weight({d, hidden}, kInitStd, gen));
  up = register_parameter("w_up", new_weight({d, hidden}, kInitStd, gen));
  down = register_parameter("w_down", new_weight({hidden, d}, out_std, gen));
}

DenseFFN::DenseFFN(const ModelConfig& c, Generator& gen) {
  // Dense: one SwiGLU of width k·d_ffn·M (k = 1 for the plain dense baseline).
  mlp_ = register_module("mlp", std::make_shared<SwiGLU>(c.d_model, c.expert_width() * c.granularity * c.dense_multiplier,
                                                         output_init_std(c.n_layers), gen));
}

Tensor DenseFFN::forward(const Tensor& x, LayerRouting*) const { return mlp_->forward(x); }

MoEFFN::MoEFFN(const ModelConfig& c, Generator& gen)
    : kind_(c.ffn), k_(c.active()), aux_coeff_(c.aux_loss_coeff), load_balanced_(c.l1_load_balanced) {
  const int64_t E = c.experts();
  router_ = register_parameter("router", new_weight({c.d_model, E}, kInitStd, gen));
  auto list = register_module("experts", std::make_shared<ModuleList>());
  for (int64_t e = 0; e < E; ++e) {
    auto ex = list->push_back(std::make_shared<SwiGLU>(c.d_model, c.expert_width(), output_init_std(c.n_layers), gen));
    experts_.gate.push_back(ex->gate);
    experts_.up.push_back(ex->up);
    experts_.down.push_back(ex->down);
  }
}

Tensor MoEFFN::forward(const Tensor& x, LayerRouting* routing) const {
  Tensor logits = matmul(x, router_);  // [T, E]
  RouterOutput r = kind_ == "topk" ? route_topk(logits, k_, aux_coeff_) : route_relu(logits, k_, load_balanced_);
  if (routing) *routing = {r.counts, r.active_pairs, r.tokens, r.aux_loss, r.reg_loss};
  return moe_dispatch(x, r.routing, r.counts, experts_);
}

Block::Block(const ModelConfig& c, Generator& gen) {
  attn_norm_ = register_module("attn_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  attn_ = register_module("attn", std::make_shared<Attention>(c, gen));
  ffn_norm_ = register_module("ffn_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  if (c.ffn == "dense") {
    ffn_ = register_module("ffn", std::make_shared<DenseFFN>(c, gen));
  } else {
    ffn_ = register_module("ffn", std::make_shared<MoEFFN>(c, gen));
  }
}

Tensor Block::forward(const Tensor& x, LayerRouting* routing) const {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  Tensor h = add(x, attn_->forward(attn_norm_->forward(x)));
  Tensor f = ffn_->forward(reshape(ffn_norm_->forward(h), {B * T, d}), routing);
  return add(h, reshape(f, {B, T, d}));
}

Transformer::Transformer(const ModelConfig& c) : config_(c) {
  c.validate();
  Generator gen(c.seed);
  embed_ = register_parameter("embed", new_weight({c.vocab_size, c.d_model}, kInitStd, gen));
  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.n_layers; ++l) layers_->push_back(std::make_shared<Block>(c, gen));
  final_norm_ = register_module("final_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  lm_head_ = register_parameter("lm_head", new_weight({c.d_model, c.vocab_size}, kInitStd, gen));
}

ForwardOutput Transformer::forward(const Tensor& tokens) const {
  REMOE_CHECK(tokens.dim() == 2, "Transformer::forward: tokens must be [B, T], got ", shape_str(tokens.shape()));
  const int64_t B = tokens.size(0), T = tokens.size(1);
  ForwardOutput out;
  Tensor x = embedding(embed_, tokens);  // [B, T, d]
  for (size_t l = 0; l < layers_->size(); ++l) {
    LayerRouting r;
    x = layers_->at<Block>(l)->forward(x, is_moe() ? &r : nullptr);
    if (is_moe()) out.layers.push_back(r);
  }
  out.logits = matmul(reshape(final_norm_->forward(x), {B * T, config_.d_model}), lm_head_);
  return out;
}

LossParts compute_loss(const Transformer& model, const ForwardOutput& out, const Tensor& targets, double lambda) {
  const ModelConfig& c = model.config();
  LossParts p;
  Tensor lm = cross_entropy(out.logits, reshape(targets, {-1}));
  p.lm = lm.item();
  p.total = lm;
  if (out.layers.empty()) return p;
  Tensor router_term;
  for (const LayerRouting& r : out.layers) {
    Tensor term = c.ffn == "topk" ? r.aux_loss : r.reg_loss;
    router_term = router_term.defined() ? add(router_term, term) : term;
    p.active_pairs += r.active_pairs;
    p.routing_slots += r.tokens * c.experts();
  }
  if (c.ffn == "topk") {
    p.aux = router_term.item();  // Σ over layers (spec §2)
    p.total = add(lm, cast(router_term, lm.dtype()));
  } else {
    Tensor reg = div(router_term, static_cast<double>(out.layers.size()));  // L_reg: 1/L of Eq. 10
    p.reg = reg.item();
    p.total = add(lm, cast(mul(reg, lambda), lm.dtype()));
  }
  return p;
}

}  // namespace remoe
