#include "models/transformer.h"

#include <cmath>

namespace remoe {

void ModelConfig::validate() const {
  const RouterSpec& router = router_spec(ffn);  // names the registered routers
  REMOE_CHECK(d_model > 0 && n_layers > 0 && vocab_size > 0, "model: d_model, n_layers and vocab_size must be > 0");
  REMOE_CHECK(n_heads > 0 && d_model % n_heads == 0, "model.n_heads = ", n_heads, " must divide d_model = ", d_model);
  REMOE_CHECK(head_dim() % 2 == 0, "model: head_dim = d_model / n_heads = ", head_dim(), " must be even (RoPE)");
  REMOE_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "model.n_kv_heads = ", n_kv_heads,
              " must divide n_heads = ", n_heads);
  REMOE_CHECK(granularity >= 1, "moe.granularity = ", granularity, " must be >= 1");
  REMOE_CHECK((ffn_hidden > 0 ? ffn_hidden : 4 * d_model) % granularity == 0, "moe.granularity = ", granularity,
              " must divide the FFN width ", (ffn_hidden > 0 ? ffn_hidden : 4 * d_model));
  REMOE_CHECK(dense_multiplier >= 1, "model.dense_multiplier = ", dense_multiplier, " must be >= 1");
  if (router.routes_tokens) {
    REMOE_CHECK(num_experts >= 1, "moe.num_experts = ", num_experts, " must be >= 1");
    REMOE_CHECK(topk >= 1 && topk <= num_experts, "moe.topk = ", topk, " must be in [1, num_experts = ", num_experts, "]");
  }
  REMOE_CHECK(topk_warmup_k >= 0 && topk_warmup_k <= num_experts, "moe.topk_warmup_k = ", topk_warmup_k,
              " must be in [0, num_experts = ", num_experts, "]");
  REMOE_CHECK(topk_warmup_steps >= 0, "moe.topk_warmup_steps = ", topk_warmup_steps, " must be >= 0");
  REMOE_CHECK(lory_segment >= 1, "moe.lory_segment = ", lory_segment, " must be >= 1");
  REMOE_CHECK(sparsemixer_eps >= 0, "moe.sparsemixer_eps = ", sparsemixer_eps, " must be >= 0");
}

RMSNorm::RMSNorm(int64_t d, double eps) : eps_(eps) { weight_ = register_parameter("weight", ones({d})); }

Attention::Attention(const ModelConfig& c, Generator& gen)
    : n_heads_(c.n_heads), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim()), rope_base_(c.rope_base) {
  const int64_t d = c.d_model, hd = c.head_dim();
  wq_ = register_parameter("wq", normal_weight({d, c.n_heads * hd}, kInitStd, gen));
  wk_ = register_parameter("wk", normal_weight({d, c.n_kv_heads * hd}, kInitStd, gen));
  wv_ = register_parameter("wv", normal_weight({d, c.n_kv_heads * hd}, kInitStd, gen));
  wo_ = register_parameter("wo", normal_weight({c.n_heads * hd, d}, output_init_std(c.n_layers), gen));
}

namespace {

// Causal GQA attention of q [B, Tn, Hq, D] (positions pos … pos+Tn−1) over the keys and values of
// positions 0 … pos+Tn−1, k and v [B, Tk, Hkv, D]: the decoding form of ops' attention(), built
// from basic ops (inference only; Tn is 1 after the prompt).
Tensor attend_to_cache(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t B = q.size(0), Tn = q.size(1), Hq = q.size(2), D = q.size(3), Tk = k.size(1), Hkv = k.size(2);
  const int64_t pos = Tk - Tn;
  auto per_query_head = [&](const Tensor& t) {  // [B, Tk, Hkv, D] → [B, Hq, Tk, D]; head h reads h / (Hq/Hkv)
    Tensor heads = unsqueeze(permute(t, {0, 2, 1, 3}), 2);
    return reshape(contiguous(expand(heads, {B, Hkv, Hq / Hkv, Tk, D})), {B, Hq, Tk, D});
  };
  Tensor qh = contiguous(permute(q, {0, 2, 1, 3}));  // [B, Hq, Tn, D]
  Tensor scores = mul(matmul(qh, transpose(per_query_head(k), 2, 3)), 1.0 / std::sqrt(static_cast<double>(D)));
  if (Tn > 1) {  // query i (position pos + i) sees keys j <= pos + i
    std::vector<uint8_t> visible(static_cast<size_t>(Tn * Tk));
    for (int64_t i = 0; i < Tn; ++i)
      for (int64_t j = 0; j < Tk; ++j) visible[static_cast<size_t>(i * Tk + j)] = j <= pos + i;
    scores = where(from_vector(visible, {Tn, Tk}), scores, full({1}, -INFINITY, {scores.dtype()}));
  }
  Tensor o = matmul(softmax(scores, -1), per_query_head(v));  // [B, Hq, Tn, D]
  return contiguous(permute(o, {0, 2, 1, 3}));                 // [B, Tn, Hq, D]
}

}  // namespace

Tensor Attention::forward(const Tensor& x, Tensor* k_cache, Tensor* v_cache) const {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t pos = k_cache && k_cache->defined() ? k_cache->size(1) : 0;
  Tensor q = rope(reshape(matmul(x, wq_), {B, T, n_heads_, head_dim_}), rope_base_, pos);
  Tensor k = rope(reshape(matmul(x, wk_), {B, T, n_kv_heads_, head_dim_}), rope_base_, pos);
  Tensor v = reshape(matmul(x, wv_), {B, T, n_kv_heads_, head_dim_});
  Tensor o;  // [B, T, Hq, D]
  if (k_cache) {
    *k_cache = pos > 0 ? cat({*k_cache, k}, 1) : k;
    *v_cache = pos > 0 ? cat({*v_cache, v}, 1) : v;
    o = attend_to_cache(q, *k_cache, *v_cache);
  } else {
    o = attention(q, k, v, /*causal=*/true);
  }
  return matmul(reshape(o, {B, T, n_heads_ * head_dim_}), wo_);
}

Block::Block(const ModelConfig& c, Generator& gen) {
  attn_norm_ = register_module("attn_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  attn_ = register_module("attn", std::make_shared<Attention>(c, gen));
  ffn_norm_ = register_module("ffn_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  ffn_ = register_module("ffn", router_spec(c.ffn).make_ffn(c, gen));
}

Tensor Block::forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing,
                      KVCache* cache) const {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
  const size_t l = static_cast<size_t>(ctx.layer);
  Tensor h = cache ? add(x, attn_->forward(attn_norm_->forward(x), &cache->k[l], &cache->v[l]))
                   : add(x, attn_->forward(attn_norm_->forward(x)));
  Tensor f = ffn_->forward(reshape(ffn_norm_->forward(h), {B * T, d}), ctx, routing);
  return add(h, reshape(f, {B, T, d}));
}

Transformer::Transformer(const ModelConfig& c) : config_(c), router_(&router_spec(c.ffn)) {
  c.validate();
  Generator gen(c.seed);
  embed_ = register_parameter("embed", normal_weight({c.vocab_size, c.d_model}, kInitStd, gen));
  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.n_layers; ++l) layers_->push_back(std::make_shared<Block>(c, gen));
  final_norm_ = register_module("final_norm", std::make_shared<RMSNorm>(c.d_model, c.norm_eps));
  lm_head_ = register_parameter("lm_head", normal_weight({c.d_model, c.vocab_size}, kInitStd, gen));
}

ForwardOutput Transformer::forward(const Tensor& tokens, ForwardOptions options) const {
  REMOE_CHECK(tokens.dim() == 2, "Transformer::forward: tokens must be [B, T], got ", shape_str(tokens.shape()));
  const int64_t B = tokens.size(0), T = tokens.size(1);
  ForwardOutput out;
  Tensor x = embedding(embed_, tokens);  // [B, T, d]
  RouteContext ctx{reshape(contiguous(tokens), {B * T}), B, T, options.step, 0, config_.seed, options.dp,
                   options.first_token, options.ep};
  KVCache* cache = options.cache;
  if (cache) {
    REMOE_CHECK(router_->token_local, "Transformer::forward: router '", router_->name,
                "' routes a token from other tokens (not token-local): decode it without a KV cache");
    cache->k.resize(layers_->size());
    cache->v.resize(layers_->size());
  }
  for (size_t l = 0; l < layers_->size(); ++l) {
    std::optional<RouterOutput> r;
    ctx.layer = static_cast<int64_t>(l);
    x = layers_->at<Block>(l)->forward(x, ctx, &r, cache);
    if (r) out.layers.push_back(std::move(*r));
  }
  if (cache) cache->length += T;
  out.logits = matmul(reshape(final_norm_->forward(x), {B * T, config_.d_model}), lm_head_);
  return out;
}

LossParts compute_loss(const Transformer& model, const ForwardOutput& out, const Tensor& targets, double lambda,
                       double router_scale) {
  const ModelConfig& c = model.config();
  LossParts p;
  Tensor lm = cross_entropy(out.logits, reshape(targets, {-1}));
  p.lm = lm.item();
  p.total = lm;
  Tensor router_term;
  for (const RouterOutput& r : out.layers) {
    if (r.loss.defined()) router_term = router_term.defined() ? add(router_term, r.loss) : r.loss;
    p.active_pairs += r.active_pairs;
    p.routing_slots += r.tokens * r.experts;
  }
  const RouterLoss kind = model.router().loss;
  if (!router_term.defined() || kind == RouterLoss::none) return p;
  if (kind == RouterLoss::aux) {
    p.aux = router_term.item();  // Σ over layers (docs/routers.md)
    p.router_term = p.aux;
    p.total = add(lm, cast(mul(router_term, router_scale), lm.dtype()));
  } else {
    // L_reg: the 1/L of Eq. 10, or the reference code's plain sum over layers.
    Tensor reg = c.l1_sum_over_layers ? router_term : div(router_term, static_cast<double>(out.layers.size()));
    p.reg = reg.item();
    p.router_term = lambda * p.reg;
    p.total = add(lm, cast(mul(reg, lambda * router_scale), lm.dtype()));
  }
  return p;
}

}  // namespace remoe
