// Module: the base of every model component (PyTorch's nn.Module, reduced to what training needs).
// A module owns named parameters (leaf tensors that require grad) and named child modules; the
// dotted names ("layers.0.attn.wq") are what checkpoints, the optimizer state and logs use.
//
// Order (as PyTorch's named_parameters / state_dict): a module's own parameters in registration
// order, then each child in registration order, recursively (pre-order). A tensor reachable under
// two names (tied weights, a shared child) is listed once, under the first name met.
//
// Initialisation follows the paper (docs/model.md): every weight N(0, 0.01), the two output projections
// (attention out, expert down) N(0, 0.01/sqrt(2·n_layers)), norm gains 1. The helpers draw from an
// explicit Generator: no global state, so a seed reproduces a model on every device.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace remoe {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Modules are held by shared_ptr and their parameters by handle: copying one would alias.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registers `t` (a defined floating leaf) as parameter `name`, marks it requires_grad and returns
  // it (the same handle: updates through either are visible to both). `name` must be non-empty,
  // contain no '.', and not already name a parameter or child of this module.
  Tensor register_parameter(const std::string& name, Tensor t);

  // Registers `m` as child `name` (same naming rules) and returns it, typed as given.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    register_child(name, std::shared_ptr<Module>(m));
    return m;
  }

  // Every parameter of this module and its descendants with its dotted name, in the order above.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  // The parameter with this dotted name; throws naming it (and this module's names) if absent.
  Tensor parameter(const std::string& dotted_name) const;
  // Direct children, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }

  // Drops the accumulated gradient of every parameter (like PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();
  // Total number of elements over the (deduplicated) parameters.
  int64_t num_parameters() const;

  // Training / evaluation mode of this module and all its descendants. Nothing in this project
  // behaves differently yet (no dropout), but routers' statistics and the CLI read the flag.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 private:
  void register_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const char* what, const std::string& name) const;

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A list of child modules named "0", "1", ... in push order (PyTorch's nn.ModuleList), so that the
// transformer's blocks are "layers.0", "layers.1", ...
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(items_.size()), m);
    items_.push_back(m);
    return m;
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  // Element i cast to M; throws if it is not an M.
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    auto p = std::dynamic_pointer_cast<M>((*this)[i]);
    REMOE_CHECK(p != nullptr, "ModuleList::at: element ", i, " has a different type");
    return p;
  }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// ---- initialisation (in place, no autograd) ----
constexpr double kInitStd = 0.01;  // the paper's N(0, 0.01) for every weight, router included

// The std of the output projections (attention out, expert down): std / sqrt(2·n_layers).
inline double output_init_std(int64_t n_layers, double std = kInitStd) {
  return std / std::sqrt(2.0 * static_cast<double>(n_layers));
}

// Fills t with N(0, std²) drawn from gen (consuming t.numel() numbers of its stream).
void init_normal(const Tensor& t, double std, Generator& gen);
// A new f32 weight of `shape` drawn from N(0, std²).
Tensor normal_weight(const Shape& shape, double std, Generator& gen);
void init_ones(const Tensor& t);   // norm gains
void init_zeros(const Tensor& t);

}  // namespace remoe
