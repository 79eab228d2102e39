// remoe: the experiment runner. `remoe <command> --help` documents each command.
//   remoe data   build the corpus, the tokenizer and the token shards
//   remoe train  train one model (config file + --section.key=value overrides)
//   remoe eval   held-out loss per domain and zero-shot benchmarks of a checkpoint
//   remoe demo   dense vs TopK vs ReMoE on the demo corpus, side by side
//   remoe bench  speed: the training step (vs PyTorch with compare.py), the GEMM peak
//   remoe sample generate text from a run's checkpoint
//   remoe sweep  run a sweep file (one run per point and seed; skip, resume, budget, pack)
//   remoe report tables and plots from run directories, sweep directories or packed archives
//   remoe analyze the paper's analyses of runs: training stages, domain specialisation, expert allocation
#include <iostream>
#include <map>

#include "core/comm.h"
#include "core/error.h"
#include "experiments/cli/commands.h"

namespace {

// An error that ends a command: exit code 2. Under mpirun (several processes) the other ranks may
// be waiting inside a collective for this one, so the whole job is ended with the message instead.
int report_error(const std::string& what) {
  std::shared_ptr<remoe::Communicator> world;
  try {
    world = remoe::world_communicator();
  } catch (const std::exception&) {
  }
  if (world && world->size() > 1) world->abort("error: " + what);
  std::cerr << "remoe: error: " << what << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  CLI::App app{"remoe: ReMoE vs TopK MoE experiments (train, evaluate, compare)"};
  app.require_subcommand(1);
  std::map<std::string, remoe::cli::Command> commands;
  commands["data"] = remoe::cli::add_data_command(app);
  commands["train"] = remoe::cli::add_train_command(app, args);
  commands["eval"] = remoe::cli::add_eval_command(app);
  commands["demo"] = remoe::cli::add_demo_command(app, args);
  commands["bench"] = remoe::cli::add_bench_command(app);
  commands["sample"] = remoe::cli::add_sample_command(app);
  commands["sweep"] = remoe::cli::add_sweep_command(app);
  commands["report"] = remoe::cli::add_report_command(app);
  commands["analyze"] = remoe::cli::add_analyze_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) return commands.at(sub->get_name())();
  } catch (const remoe::Error& e) {
    return report_error(e.what());
  } catch (const std::exception& e) {
    return report_error(e.what());
  }
  return 0;
}
