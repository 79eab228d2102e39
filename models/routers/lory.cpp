// Lory (Zhong et al. 2024, "Lory: Fully Differentiable Mixture-of-Experts for Autoregressive
// Language Model Pre-training", arXiv 2405.03133, §3): instead of dispatching tokens, each
// segment of moe.lory_segment tokens runs ONE SwiGLU whose weights are the softmax-weighted
// average of the E experts' weights (SMEAR-style soft merging, fully differentiable):
//   p_s = softmax(mean(x over segment s−1) · W_r)             (causal: decided by the previous segment)
//   θ_s = Σ_e p_se θ_e   for θ = W_gate, W_up, W_down
//   y_t = SwiGLU_{θ_s}(x_t) for every token t of segment s
// The first segment of a sequence has no previous segment; we give it uniform weights 1/E, which
// keeps every token's output a function of its past only (our choice; docs/routers.md).
#include "models/router_registry.h"

namespace remoe {
namespace {

// θ = Σ_e p_be θ_e per sequence b, then the SwiGLU of xs [B, S, d] with it.
Tensor merged_swiglu(const Tensor& xs, const Tensor& p, const LoryWeights& w) {
  const int64_t B = xs.size(0), E = p.size(1);
  auto merge = [&](const Tensor& t) {  // t [E, a, b] → [B, a, b]
    return reshape(matmul(p, reshape(t, {E, -1})), {B, t.size(1), t.size(2)});
  };
  return matmul(swiglu(matmul(xs, merge(w.gate)), matmul(xs, merge(w.up))), merge(w.down));
}

}  // namespace

Tensor lory_mix(const Tensor& x, const LoryWeights& w, int64_t B, int64_t T, int64_t segment) {
  REMOE_CHECK(x.dim() == 2 && B * T == x.size(0), "lory: x ", shape_str(x.shape()), " is not [batch ", B, " × seq ", T, ", d]");
  REMOE_CHECK(segment >= 1, "lory: segment = ", segment, " must be >= 1");
  const int64_t d = x.size(1), E = w.router.size(1);
  Tensor x3 = reshape(x, {B, T, d});
  std::vector<Tensor> outputs;
  Tensor p = full({B, E}, 1.0 / static_cast<double>(E), {x.dtype()});  // the first segment: uniform
  for (int64_t start = 0; start < T; start += segment) {
    Tensor xs = slice(x3, 1, start, std::min(T, start + segment));  // [B, S, d]
    outputs.push_back(merged_swiglu(xs, p, w));
    p = softmax(matmul(mean(xs, {1}), w.router), -1);  // routes the next segment
  }
  return reshape(cat(outputs, 1), {B * T, d});
}

namespace {

class LoryFFN : public FFN {
 public:
  LoryFFN(const ModelConfig& c, Generator& gen) : experts_(c.experts()), segment_(c.lory_segment) {
    const int64_t d = c.d_model, f = c.expert_width(), E = c.experts();
    w_.router = register_parameter("router", normal_weight({d, E}, kInitStd, gen));
    w_.gate = register_parameter("w_gate", normal_weight({E, d, f}, kInitStd, gen));
    w_.up = register_parameter("w_up", normal_weight({E, d, f}, kInitStd, gen));
    w_.down = register_parameter("w_down", normal_weight({E, f, d}, output_init_std(c.n_layers), gen));
  }

  Tensor forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing) const override {
    if (routing) *routing = every_expert_mixed(x.size(0), x.dtype());
    return lory_mix(x, w_, ctx.batch, ctx.seq, segment_);
  }

 private:
  // Every token uses a mixture of every expert's weights: no pair is inactive.
  RouterOutput every_expert_mixed(int64_t tokens, DType dt) const {
    RouterOutput r;
    r.tokens = tokens;
    r.experts = experts_;
    r.active_pairs = tokens * experts_;
    r.counts = full({experts_}, static_cast<double>(tokens), {DType::i64});
    r.routing = {zeros({0}, {DType::i64}), zeros({0}, {DType::i64}), zeros({0}, {dt})};
    return r;
  }

  int64_t experts_, segment_;
  LoryWeights w_;
};

}  // namespace

RouterSpec lory_router() {
  RouterSpec s;
  s.name = "lory";
  s.help = "Lory: per-segment soft merging of the experts' weights, routed from the previous segment (causal)";
  s.source = "Zhong et al. 2024, Lory (arXiv 2405.03133), causal segment routing";
  s.label = "Lory";
  s.token_local = false;
  s.config_keys = {"moe.lory_segment"};
  s.expert_parallel = false;
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> { return std::make_shared<LoryFFN>(c, gen); };
  s.active_experts = [](const ModelConfig&, double) { return 1.0; };  // one merged expert per token
  return s;
}

}  // namespace remoe
