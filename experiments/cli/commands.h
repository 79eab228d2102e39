// The `remoe` subcommands. Each registers its options on a CLI11 subcommand and returns the
// function that runs it (the process exit code).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace remoe::cli {

using Command = std::function<int()>;

Command add_data_command(CLI::App& app);
Command add_train_command(CLI::App& app, const std::vector<std::string>& argv);
Command add_eval_command(CLI::App& app);
Command add_demo_command(CLI::App& app, const std::vector<std::string>& argv);
Command add_bench_command(CLI::App& app);
Command add_sample_command(CLI::App& app);
Command add_sweep_command(CLI::App& app);
Command add_report_command(CLI::App& app);
Command add_analyze_command(CLI::App& app);

// The shared `--threads N` option (thread_option.cpp) and its effect (omp_set_num_threads; 0 leaves
// OpenMP's default).
std::shared_ptr<int> add_threads_option(CLI::App* sub);
void apply_threads(int threads);

}  // namespace remoe::cli
