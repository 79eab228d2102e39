#include "models/module.h"

#include <sstream>
#include <unordered_set>

#include "autograd/node.h"
#include "core/random.h"

namespace remoe {

void Module::check_new_name(const char* what, const std::string& name) const {
  REMOE_CHECK(!name.empty(), what, ": empty name");
  REMOE_CHECK(name.find('.') == std::string::npos, what, ": name \"", name,
              "\" contains '.', which separates the levels of dotted names");
  for (const auto& [n, t] : params_)
    REMOE_CHECK(n != name, what, ": \"", name, "\" is already a parameter of this module");
  for (const auto& [n, c] : children_)
    REMOE_CHECK(n != name, what, ": \"", name, "\" is already a child module of this module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name("register_parameter", name);
  REMOE_CHECK(t.defined(), "register_parameter: \"", name, "\" is an undefined tensor");
  REMOE_CHECK(is_floating(t.dtype()), "register_parameter: \"", name, "\" has dtype ", dtype_name(t.dtype()),
              ", parameters must be floating");
  REMOE_CHECK(t.is_leaf(), "register_parameter: \"", name,
              "\" is the output of an op (it has a grad_fn); register a leaf (use detach())");
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

void Module::register_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name("register_module", name);
  REMOE_CHECK(m != nullptr, "register_module: \"", name, "\" is a null module");
  REMOE_CHECK(m.get() != this, "register_module: \"", name, "\" is the module itself");
  children_.emplace_back(name, std::move(m));
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  // Pre-order walk: own parameters, then children. `seen` deduplicates tensors (by impl) so tied
  // weights and shared children are listed once, under the first name met.
  std::unordered_set<const TensorImpl*> seen;
  std::unordered_set<const Module*> on_path;  // catches a module registered inside its own subtree
  auto walk = [&](auto&& self, const Module& m, const std::string& prefix) -> void {
    REMOE_CHECK(on_path.insert(&m).second, "named_parameters: module \"", prefix,
                "\" contains itself (a cycle of register_module)");
    for (const auto& [name, t] : m.params_)
      if (seen.insert(t.impl_ptr().get()).second) out.emplace_back(prefix + name, t);
    for (const auto& [name, child] : m.children_) self(self, *child, prefix + name + ".");
    on_path.erase(&m);
  };
  walk(walk, *this, "");
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

Tensor Module::parameter(const std::string& dotted_name) const {
  NamedTensors all = named_parameters();
  for (const auto& [name, t] : all)
    if (name == dotted_name) return t;
  std::ostringstream names;
  for (size_t i = 0; i < all.size(); ++i) names << (i ? ", " : "") << all[i].first;
  fail("Module::parameter: no parameter named \"", dotted_name, "\" (have: ", names.str(), ")");
}

void Module::zero_grad() {
  for (const auto& [name, t] : named_parameters()) t.zero_grad();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t i) const {
  REMOE_CHECK(i < items_.size(), "ModuleList: index ", i, " out of range for a list of ", items_.size());
  return items_[i];
}

void init_normal(const Tensor& t, double std, Generator& gen) {
  REMOE_CHECK(std >= 0, "init_normal: std must be >= 0, got ", std);
  NoGradGuard guard;
  copy_(t, randn(t.shape(), gen, {t.dtype(), t.device()}, 0.0, std));
}

void init_ones(const Tensor& t) {
  NoGradGuard guard;
  copy_(t, ones(t.shape(), {t.dtype(), t.device()}));
}

void init_zeros(const Tensor& t) {
  NoGradGuard guard;
  copy_(t, zeros(t.shape(), {t.dtype(), t.device()}));
}

Tensor normal_weight(const Shape& shape, double std, Generator& gen) {
  Tensor t = empty(shape);
  init_normal(t, std, gen);
  return t;
}

}  // namespace remoe
