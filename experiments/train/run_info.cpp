#include "experiments/train/run_info.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef REMOE_WITH_CUDA
#include "cuda/stream.h"
#endif

#include "core/error.h"

namespace remoe::experiments {
namespace {

std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    std::array<char, 256> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) out += buffer.data();
    ::pclose(pipe);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string git_revision() {
  const std::string dir = REMOE_SOURCE_DIR;
  std::string sha = command_output("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (sha.empty()) return "unknown";
  if (!command_output("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) sha += "-dirty";
  return sha;
}

std::string resolve_device(const std::string& requested) {
  // The CUDA kernels exist (cuda/) but the ops' dispatch does not route to them yet, so training
  // runs on the CPU; asking for cuda explicitly is an error rather than a silent CPU run.
  if (requested == "cuda")
    fail("system.device = cuda: the CUDA backend is not yet wired into the ops' dispatch; use cpu or auto");
  return "cpu";
}

nlohmann::ordered_json describe_run(const std::vector<std::string>& argv, const std::string& device,
                                    const Config& config) {
  nlohmann::ordered_json j;
  j["argv"] = argv;
  j["git"] = git_revision();
  j["started"] = static_cast<int64_t>(std::time(nullptr));
#if defined(__clang__)
  j["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  j["compiler"] = std::string("gcc ") + __VERSION__;
#endif
#ifdef REMOE_WITH_CUDA
  j["cuda_built"] = true;
  j["cuda_devices"] = cuda::device_count();
#else
  j["cuda_built"] = false;
#endif
  j["device"] = device;
#ifdef _OPENMP
  j["threads"] = omp_get_max_threads();
#else
  j["threads"] = 1;
#endif
  j["seed"] = config.integer("run.seed");
  j["config"] = config.to_json();
  return j;
}

}  // namespace remoe::experiments
