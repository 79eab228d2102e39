#include <iostream>
#include <limits>

#include "experiments/cli/commands.h"
#include "experiments/train/run_eval.h"

namespace remoe::cli {

Command add_eval_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("eval", "held-out loss/bpb per domain and zero-shot tasks of a run's checkpoint");
  auto o = std::make_shared<experiments::RunEvalOptions>();
  auto run = std::make_shared<std::string>();
  auto ckpt = std::make_shared<std::string>();
  auto eval_dir = std::make_shared<std::string>();
  auto no_zero_shot = std::make_shared<bool>(false);
  sub->add_option("run", *run, "run directory (runs/<name>)")->required();
  sub->add_option("--ckpt", *ckpt, "checkpoint directory (default: the newest complete one)");
  sub->add_option("--max-tokens", o->max_tokens_per_domain, "held-out tokens per domain (0 = all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("--eval-dir", *eval_dir, "where the benchmark files are (default: ../shared/eval)");
  sub->add_option("--tasks", o->tasks, "zero-shot tasks (hellaswag piqa boolq lambada_openai)")->delimiter(',');
  sub->add_option("--limit", o->limit, "items per zero-shot task (0 = all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_flag("--no-zero-shot", *no_zero_shot, "held-out loss only");
  const std::shared_ptr<int> threads = add_threads_option(sub);
  return [o, run, ckpt, eval_dir, no_zero_shot, threads]() {
    apply_threads(*threads);
    o->run_dir = *run;
    if (!ckpt->empty()) o->checkpoint = *ckpt;
    o->eval_dir = *eval_dir;
    o->zero_shot = !*no_zero_shot;
    nlohmann::ordered_json r = experiments::evaluate_run(*o);
    std::cout << experiments::eval_markdown(r) << "\nwritten: " << (o->run_dir / "eval.json").string() << "\n";
    return 0;
  };
}

}  // namespace remoe::cli
