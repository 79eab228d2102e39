#include "models/router_registry.h"

#include <cstdio>

#include "core/error.h"

namespace remoe {

// Each router's spec, defined in its own file under models/routers/.
RouterSpec dense_router();
RouterSpec topk_router();
RouterSpec relu_router();
RouterSpec hash_router();
RouterSpec expert_choice_router();
RouterSpec sparsemixer_router();
RouterSpec lory_router();

const std::vector<RouterSpec>& router_registry() {
  static const std::vector<RouterSpec> registry = {
      dense_router(), topk_router(),       relu_router(), hash_router(),
      expert_choice_router(), sparsemixer_router(), lory_router(),
  };
  return registry;
}

std::vector<std::string> router_names() {
  std::vector<std::string> names;
  for (const RouterSpec& s : router_registry()) names.push_back(s.name);
  return names;
}

const RouterSpec* find_router_spec(const std::string& name) {
  for (const RouterSpec& s : router_registry())
    if (s.name == name) return &s;
  return nullptr;
}

const RouterSpec& router_spec(const std::string& name) {
  for (const RouterSpec& s : router_registry())
    if (s.name == name) return s;
  std::string names;
  for (const std::string& n : router_names()) names += (names.empty() ? "" : ", ") + n;
  fail("moe.router = '", name, "' is not a registered router; registered: ", names);
}

std::string router_status(const RouterSpec& spec, double router_term, double sparsity, double lambda) {
  char buf[128] = "";
  switch (spec.loss) {
    case RouterLoss::aux: std::snprintf(buf, sizeof buf, " | aux %.4f | S %.3f", router_term, sparsity); break;
    case RouterLoss::regularizer:
      std::snprintf(buf, sizeof buf, " | λ·L1 %.2e | S %.3f | λ %.2e", router_term, sparsity, lambda);
      break;
    case RouterLoss::none:
      if (spec.routes_tokens) std::snprintf(buf, sizeof buf, " | S %.3f", sparsity);
      break;
  }
  return buf;
}

double dispatched_experts(const ModelConfig& c, double sparsity) {
  return static_cast<double>(c.experts()) * (1.0 - sparsity);
}

}  // namespace remoe
