#include "models/ffn.h"

#include "models/expert_parallel.h"

namespace remoe {

SwiGLU::SwiGLU(int64_t d, int64_t hidden, double out_std, Generator& gen) {
  gate = register_parameter("w_gate", normal_weight({d, hidden}, kInitStd, gen));
  up = register_parameter("w_up", normal_weight({d, hidden}, kInitStd, gen));
  down = register_parameter("w_down", normal_weight({hidden, d}, out_std, gen));
}

DenseFFN::DenseFFN(const ModelConfig& c, Generator& gen) {
  mlp_ = register_module("mlp", std::make_shared<SwiGLU>(c.d_model, c.expert_width() * c.granularity * c.dense_multiplier,
                                                         output_init_std(c.n_layers), gen));
}

Tensor DenseFFN::forward(const Tensor& x, const RouteContext&, std::optional<RouterOutput>* routing) const {
  if (routing) routing->reset();
  return mlp_->forward(x);
}

MoEFFN::MoEFFN(const ModelConfig& c, Generator& gen, RouteFn route, bool with_router) : route_(std::move(route)) {
  const int64_t E = c.experts();
  if (with_router) router_ = register_parameter("router", normal_weight({c.d_model, E}, kInitStd, gen));
  auto list = register_module("experts", std::make_shared<ModuleList>());
  for (int64_t e = 0; e < E; ++e) {
    auto ex = list->push_back(std::make_shared<SwiGLU>(c.d_model, c.expert_width(), output_init_std(c.n_layers), gen));
    experts_.gate.push_back(ex->gate);
    experts_.up.push_back(ex->up);
    experts_.down.push_back(ex->down);
  }
}

Tensor MoEFFN::forward(const Tensor& x, const RouteContext& ctx, std::optional<RouterOutput>* routing) const {
  Tensor logits = router_.defined() ? matmul(x, router_) : Tensor();  // [T, E]
  RouterOutput r = route_(logits, ctx);
  Tensor y = ctx.ep ? moe_dispatch_expert_parallel(x, r.routing, r.counts, experts_, *ctx.ep)
                    : moe_dispatch(x, r.routing, r.counts, experts_);
  if (routing) *routing = std::move(r);
  return y;
}

}  // namespace remoe
