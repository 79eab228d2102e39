// `--threads N` for the commands that run a model without training it (eval, analyze): training
// takes its thread count from system.threads, these take it from the command line.
#include <omp.h>

#include <limits>

#include "experiments/cli/commands.h"

namespace remoe::cli {

std::shared_ptr<int> add_threads_option(CLI::App* sub) {
  auto threads = std::make_shared<int>(0);
  sub->add_option("--threads", *threads,
                  "CPU threads (0 = OpenMP's default, OMP_NUM_THREADS or every core); on a machine whose cores "
                  "are busy (a sweep beside it) use 1: idle OpenMP threads spin against the other processes")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()))
      ->capture_default_str();
  return threads;
}

void apply_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace remoe::cli
