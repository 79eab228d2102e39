// The router registry: every routing method is one RouterSpec, registered once by name in
// models/router_registry.cpp. Everything that depends on the router (the FFN a block builds, the
// loss, whether the λ controller runs, FLOPs, the status line, config validation) asks its spec;
// no other file compares router names. Adding a router = one file under models/routers/ + one
// line in the registry + its tests. The methods and their sources: docs/routers.md.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "models/ffn.h"
#include "models/model_config.h"

namespace remoe {

enum class RouterLoss {
  none,         // no router loss term
  aux,          // Σ over layers of each layer's (already weighted) load-balancing loss, added to L_lm
  regularizer,  // λ·L_reg with L_reg = mean (or sum) over layers of each layer's penalty; λ adaptive
};

struct RouterSpec {
  std::string name;
  std::string help;    // one line for --help-config and docs
  std::string source;  // paper and equation
  std::string label;          // its name in tables and plots ("TopK", "ReMoE", ...)
  std::string paper_column;   // the column of the paper's scaling tables it is set beside: "Dense", "MoE", "ReMoE" or ""
  std::string compared_with;  // the router whose run of the same point and seed it is paired with (ReMoE − TopK), or ""
  RouterLoss loss = RouterLoss::none;
  bool adaptive_lambda = false;  // the ReMoE λ controller updates after every step
  bool token_local = true;       // a token's output depends only on it and its past (KV-cache decoding)
  bool routes_tokens = true;     // layers report a RouterOutput (false: dense)
  bool expert_parallel = true;   // its layers dispatch rows to experts (MoEFFN): experts can be split over ranks
  std::vector<std::string> config_keys;  // the moe.* keys it reads besides num_experts/topk/granularity
  std::function<std::shared_ptr<FFN>(const ModelConfig&, Generator&)> make_ffn;
  // Experts whose FFN runs per token, for FLOPs/MFU, given the step's measured sparsity.
  std::function<double(const ModelConfig&, double sparsity)> active_experts;
};

const std::vector<RouterSpec>& router_registry();
// The spec of `name`; an unknown name is an error that lists the registered names.
const RouterSpec& router_spec(const std::string& name);
// The spec of `name`, or nullptr (e.g. a run directory from another version).
const RouterSpec* find_router_spec(const std::string& name);
std::vector<std::string> router_names();

// The status-line fragment of a router's loss term (mean router term of the log window, step sparsity, λ).
std::string router_status(const RouterSpec& spec, double router_term, double sparsity, double lambda);

// Active experts of a token-dispatching layer: (1 − S)·E·G (S = 1 − active pairs / slots).
double dispatched_experts(const ModelConfig& c, double sparsity);

}  // namespace remoe
