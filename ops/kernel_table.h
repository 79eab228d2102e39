// The device seam of an op family: the kernels each device type runs, looked up by the device of
// the op's operands. ops/ registers the CPU kernels; a device backend (cuda/, the layer above ops/)
// registers its own at static initialisation, as its allocator registers with core. So an op names
// its kernels in one place, `ops/` never includes a backend (tests/layers makes that a link error),
// and a device without kernels for a family is an error naming the op and the device.
//
// Why a table per family rather than MLX's eval_cpu / eval_gpu per primitive: our ops are free
// functions, not primitive objects, and a family's kernels share their contracts (out allocated by
// the caller, strided inputs), so one struct of function pointers per family says what a backend
// must provide; a missing entry is found at the call, with its op's name.
#pragma once
#include <array>

#include "core/device.h"
#include "core/error.h"

namespace remoe {

template <class Kernels>
class KernelTable {
 public:
  explicit KernelTable(const char* family) : family_(family) {}

  void set(DeviceType type, const Kernels& kernels) {
    slots_[slot(type)] = kernels;
    filled_[slot(type)] = true;
  }
  bool has(DeviceType type) const { return filled_[slot(type)]; }

  // The kernels for `device`; `op` names the caller in the error when there are none.
  const Kernels& get(const char* op, Device device) const {
    REMOE_CHECK(has(device.type), op, ": no ", family_, " kernels for device ", device.str(), " in this build");
    return slots_[slot(device.type)];
  }

 private:
  static constexpr size_t kDeviceTypes = 2;  // DeviceType::CPU, DeviceType::CUDA
  static size_t slot(DeviceType type) { return static_cast<size_t>(type); }

  const char* family_;
  std::array<Kernels, kDeviceTypes> slots_{};
  std::array<bool, kDeviceTypes> filled_{};
};

}  // namespace remoe
