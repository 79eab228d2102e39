// What a run records about where it ran (run.json): argv, git sha, compiler, CUDA, device,
// host (CPU model, GEMM library and its kernel choice), threads, seed and the resolved config; and the device choice for `system.device`.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/config/config.h"

namespace remoe::experiments {

// Sets the GEMM precision for train.precision = f32 | bf16 (ops.h: set_matmul_precision) and returns
// the one in effect: bf16 where this build and CPU can (oneDNN, AVX512-BF16), else f32 with a
// message on stderr saying why.
std::string apply_matmul_precision(const std::string& requested);

// "cpu" or "cuda" for system.device = auto | cpu | cuda; throws if cuda is asked for but unusable.
std::string resolve_device(const std::string& requested);

nlohmann::ordered_json describe_run(const std::vector<std::string>& argv, const std::string& device,
                                    const Config& config);

// The CPU model and the GEMM library with its kernel choice (OpenBLAS core, OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE as set): what a loss reproduced "to 4 decimals" must share with the original.
nlohmann::ordered_json describe_host();

// The repository's `git rev-parse HEAD` (+ "-dirty" when the tree has changes), or "unknown".
std::string git_revision();

}  // namespace remoe::experiments
