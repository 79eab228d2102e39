#include "experiments/train/run_info.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef REMOE_WITH_CUDA
#include "cuda/stream.h"
#endif

#include "core/error.h"
#include "ops/cpu/matmul.h"
#include "ops/ops.h"

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

// The first "model name" line of /proc/cpuinfo ("" where there is none).
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    return colon == std::string::npos ? "" : line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "";
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

nlohmann::ordered_json describe_host() {
  const cpu::GemmLibrary blas = cpu::gemm_library();
  nlohmann::ordered_json j;
  j["cpu_model"] = cpu_model();
  j["blas"] = {{"library", blas.name},
               {"config", blas.config},
               {"core", blas.core},
               {"OPENBLAS_CORETYPE", env_or_empty("OPENBLAS_CORETYPE")},
               {"OPENBLAS_L2_SIZE", env_or_empty("OPENBLAS_L2_SIZE")}};
  std::string why;
  j["bf16_gemm"] = bf16_matmul_supported(&why) ? "oneDNN" : why;
  j["matmul_precision"] = matmul_precision() == MatmulPrecision::bf16 ? "bf16" : "f32";
  return j;
}

std::string git_revision() {
  const std::string dir = REMOE_SOURCE_DIR;
  std::string sha = command_output("git -C '" + dir + "' rev-parse HEAD 2>/dev/null");
  if (sha.empty()) return "unknown";
  if (!command_output("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) sha += "-dirty";
  return sha;
}

std::string apply_matmul_precision(const std::string& requested) {
  REMOE_CHECK(requested == "f32" || requested == "bf16", "train.precision = '", requested, "': allowed values are f32, bf16");
  std::string why;
  if (requested == "bf16" && !bf16_matmul_supported(&why)) {
    std::cerr << "remoe: train.precision = bf16, but " << why << ": the GEMMs run in f32\n";
    set_matmul_precision(MatmulPrecision::f32);
    return "f32";
  }
  set_matmul_precision(requested == "bf16" ? MatmulPrecision::bf16 : MatmulPrecision::f32);
  return requested;
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
  j["host"] = describe_host();
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
