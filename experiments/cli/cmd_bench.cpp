// `remoe bench`: speed measurements (benchmarks, never tests).
//   remoe bench train-step --config B --router topk [--steps 20 --warmup 3]   one JSON object
//   remoe bench gemm --n 2048 --reps 10            f32 GEMM rates: remoe::matmul and Eigen's own
// experiments/bench/train_step/compare.py drives `train-step --serve` against PyTorch.
#include <iostream>

#include "core/comm.h"
#include "core/error.h"
#include "experiments/cli/commands.h"
#include "experiments/train/run_info.h"
#include "experiments/train/step_bench.h"
#include "experiments/train/throughput.h"
#include "models/router_registry.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace remoe::cli {

Command add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "speed benchmarks: the training step, the GEMM peak");
  bench->require_subcommand(1);

  CLI::App* step = bench->add_subcommand("train-step", "time remoe's training step on config A or B (JSON on stdout)");
  auto o = std::make_shared<experiments::StepBenchOptions>();
  step->add_option("--config", o->config, "A or B")->capture_default_str()->check(CLI::IsMember({"A", "B"}));
  auto config_file = std::make_shared<std::string>();
  step->add_option("-c,--config-file", *config_file,
                   "time the model of a `remoe train` config file instead (plus --section.key=value overrides)");
  step->add_option("--vocab", o->vocab, "with -c or overrides: vocabulary when data.dir has no dataset")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  step->allow_extras();  // the --section.key=value overrides
  std::vector<std::string> routers = router_names();
  routers.push_back("relu_target");
  CLI::Option* router_option = step->add_option("--router", o->router, "a registered router, or relu_target (ReMoE at its target sparsity)")
      ->capture_default_str()
      ->check(CLI::IsMember(routers));
  step->add_option("--steps", o->steps, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  step->add_option("--warmup", o->warmup, "untimed steps first")->capture_default_str()->check(CLI::NonNegativeNumber);
  step->add_option("--lr", o->lr, "constant learning rate")->capture_default_str()->check(CLI::NonNegativeNumber);
  step->add_option("--seed", o->seed, "model and batch seed")->capture_default_str();
  step->add_option("--init", o->init, "read the initial weights and the batch (written by --save-init)");
  step->add_option("--save-init", o->save_init, "write the initial weights and the batch (safetensors)");
  step->add_flag("--init-only", o->init_only, "stop after building (and saving) the initial model");
  step->add_option("--precision", o->precision, "GEMMs in f32 or bf16 (default: the config's train.precision, else f32)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  step->add_flag("--serve", o->serve, "one step per 'step' line on stdin, one JSON line each (compare.py)");
  step->add_option("--expert-parallel", o->expert_parallel, "under mpirun: experts split over groups of P ranks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  step->add_flag("--breakdown", o->breakdown, "time forward / loss / backward / clipping / AdamW separately");

  CLI::App* gemm = bench->add_subcommand("gemm", "f32 n×n×n GEMM rates: remoe::matmul and Eigen's own (JSON on stdout)");
  auto n = std::make_shared<int64_t>(2048);
  auto reps = std::make_shared<int>(10);
  gemm->add_option("--n", *n, "matrix size")->capture_default_str()->check(CLI::PositiveNumber);
  gemm->add_option("--reps", *reps, "timed products")->capture_default_str()->check(CLI::PositiveNumber);

  return [step, gemm, o, n, reps, config_file, router_option]() {
    if (step->parsed()) {
      if (!config_file->empty() || !step->remaining().empty()) {
        o->train_config.emplace();
        if (!config_file->empty()) o->train_config->apply_file(*config_file);
        o->train_config->apply_overrides(step->remaining());
      }
      o->router_given = router_option->count() > 0;
      REMOE_CHECK(!o->init_only || !o->save_init.empty(), "bench train-step: --init-only needs --save-init PATH");
      const nlohmann::json result = experiments::run_step_bench(*o);
      if (world_communicator()->rank() == 0) std::cout << result.dump() << std::endl;
    } else if (gemm->parsed()) {
      int threads = 1;
#ifdef _OPENMP
      threads = omp_get_max_threads();
#endif
      auto to_json = [](const experiments::GemmPeak& p) {
        return nlohmann::json{{"gflops", p.gflops}, {"median_gflops", p.median_gflops}, {"best_gflops", p.best_gflops}};
      };
      nlohmann::json out = {{"n", *n}, {"reps", *reps}, {"threads", threads},
                            {"host", experiments::describe_host()},
                            {"matmul", to_json(experiments::measure_gemm_peak(*n, *reps))},
                            {"eigen", to_json(experiments::measure_eigen_gemm_peak(*n, *reps))}};
      std::cout << out.dump() << std::endl;
    }
    return 0;
  };
}

}  // namespace remoe::cli
