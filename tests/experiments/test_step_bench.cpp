// `remoe bench train-step` on any `remoe train` model (issue "CPU speed II"): the config path builds
// the model the runner would build, with one micro-batch of train.batch_size × model.seq_len.
#include "experiments/train/step_bench.h"
#include "models/transformer.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::experiments;

TEST_CASE("bench train-step: a train config's model and micro-batch are the ones timed") {
  StepBenchOptions o;
  o.train_config.emplace();
  o.train_config->apply_overrides({"--data.dir=/nonexistent", "--model.d_model=32", "--model.n_layers=2",
                                   "--model.n_heads=2", "--model.n_kv_heads=1", "--model.seq_len=16",
                                   "--train.batch_size=3", "--moe.router=relu", "--moe.num_experts=4"});
  o.vocab = 96;
  o.steps = 2;
  o.warmup = 0;
  const nlohmann::json r = run_step_bench(o);
  CHECK(r["config"] == "custom");
  CHECK(r["router"] == "relu");
  CHECK(r["model"]["d_model"] == 32);
  CHECK(r["model"]["experts"] == 4);
  CHECK(r["model"]["vocab"] == 96);
  CHECK(r["tokens_per_step"] == 3 * 16);
  CHECK(r["step_ms"].size() == 2);
  ModelConfig expected = o.train_config->model_config(96);
  expected.seed = o.seed;
  CHECK(r["num_parameters"] == Transformer(expected).num_parameters());
  CHECK(r["host"]["blas"]["library"].get<std::string>().size() > 0);

  o.router = "relu_target";  // without --router, the config's router is timed: relu_target must be asked for
  CHECK_THROWS_WITH_ALL(run_step_bench(o), "relu_target needs --router");
  o.router_given = true;
  const nlohmann::json t = run_step_bench(o);
  CHECK(t["router"] == "relu_target");
  CHECK(t["relu_target_layer_sparsity"].size() == 2);
}
