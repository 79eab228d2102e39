#include <iostream>

#include "core/comm.h"
#include "experiments/cli/commands.h"
#include "experiments/train/run.h"

namespace remoe::cli {

namespace {

int exit_code(experiments::RunEnd end) {
  switch (end) {
    case experiments::RunEnd::Finished:
      return 0;
    case experiments::RunEnd::Interrupted:
      return 130;
    case experiments::RunEnd::Failed:
      return 3;
  }
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& app, const std::vector<std::string>& argv) {
  CLI::App* sub = app.add_subcommand("train", "train one model; config keys as --section.key=value (see --help-config)");
  struct Args {
    std::string config_file;
    bool resume = false, fresh = false, help_config = false, quiet = false;
    std::vector<std::string> resume_changing;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("-c,--config", args->config_file, "TOML or JSON config file ([section] key = value)");
  sub->add_flag("--resume", args->resume,
                "continue the run from its newest complete checkpoint (refuses a changed config; a run without a "
                "checkpoint starts at step 0; a finished run is left as it is)");
  sub->add_option("--resume-changing", args->resume_changing,
                  "with --resume: config keys that may differ from the run's config.toml (e.g. train.steps "
                  "eval.interval); keys that change the model or the data never may")
      ->delimiter(',');
  sub->add_flag("--fresh", args->fresh, "delete what the run directory holds and train from step 0");
  sub->add_flag("--help-config", args->help_config, "list every config key with its type, default and meaning");
  sub->add_flag("-q,--quiet", args->quiet, "no status lines on stdout (train.log still has them)");
  sub->allow_extras();  // the --section.key=value overrides
  return [sub, args, argv]() {
    if (args->help_config) {
      std::cout << "config keys (set in a file's [section] or as --section.key=value):\n"
                << experiments::describe_schema();
      return 0;
    }
    experiments::RunOptions options;
    if (!args->config_file.empty()) options.config.apply_file(args->config_file);
    options.config.apply_overrides(sub->remaining());
    options.resume = args->resume;
    options.resume_changing = args->resume_changing;
    options.fresh = args->fresh;
    options.quiet = args->quiet;
    options.argv = argv;
    experiments::RunResult r = experiments::run_training(std::move(options));
    // Under mpirun every rank ends alike; rank 0 alone says how.
    if (world_communicator()->rank() != 0) return exit_code(r.end);
    switch (r.end) {
      case experiments::RunEnd::Finished:
        if (!r.message.empty())
          std::cout << r.message << "\n";  // e.g. a resume of a run that had already finished
        else
          std::cout << "finished " << r.steps_done << " steps; run directory " << r.dir.string() << "\n";
        return 0;
      case experiments::RunEnd::Interrupted:
        std::cout << r.message << "\n";
        return 130;
      case experiments::RunEnd::Failed:
        std::cerr << "remoe: " << r.message << "\n";
        return 3;
    }
    return 0;
  };
}

}  // namespace remoe::cli
