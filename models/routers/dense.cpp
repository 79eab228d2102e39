// The dense baseline (and dense×M): no router, one SwiGLU FFN per block.
#include "models/router_registry.h"

namespace remoe {

RouterSpec dense_router() {
  RouterSpec s;
  s.name = "dense";
  s.help = "dense SwiGLU FFN of width d_ffn·M (model.dense_multiplier); no experts";
  s.source = "LLaMA (Touvron et al. 2023); the paper's Dense and Dense×8 baselines";
  s.label = "dense";
  s.paper_column = "Dense";
  s.routes_tokens = false;
  s.config_keys = {"model.dense_multiplier"};
  s.expert_parallel = false;
  s.make_ffn = [](const ModelConfig& c, Generator& gen) -> std::shared_ptr<FFN> {
    return std::make_shared<DenseFFN>(c, gen);
  };
  s.active_experts = [](const ModelConfig&, double) { return 0.0; };
  return s;
}

}  // namespace remoe
