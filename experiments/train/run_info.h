// What a run records about where it ran (run.json): argv, git sha, compiler, CUDA, device,
// threads, seed and the resolved config; and the device choice for `system.device`.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/config/config.h"

namespace remoe::experiments {

// "cpu" or "cuda" for system.device = auto | cpu | cuda; throws if cuda is asked for but unusable.
std::string resolve_device(const std::string& requested);

nlohmann::ordered_json describe_run(const std::vector<std::string>& argv, const std::string& device,
                                    const Config& config);

// The repository's `git rev-parse HEAD` (+ "-dirty" when the tree has changes), or "unknown".
std::string git_revision();

}  // namespace remoe::experiments
