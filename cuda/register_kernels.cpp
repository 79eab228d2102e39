// The CUDA backend's entries in the op families' device seams (ops/kernel_table.h). Registered at
// static initialisation, like the allocator: a program that links remoe_cuda whole runs those
// families' ops on CUDA tensors; ops/ never names cuda/.
#include "cuda/elementwise.h"
#include "ops/elementwise_kernels.h"

namespace remoe::cuda {
namespace {

bool register_kernels() {
  elementwise_kernels().set(DeviceType::CUDA, {unary, binary, compare, where, swiglu_backward});
  return true;
}

[[maybe_unused]] const bool g_registered = register_kernels();

}  // namespace
}  // namespace remoe::cuda
