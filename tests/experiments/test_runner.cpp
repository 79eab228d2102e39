// The runner end to end on a tiny dataset built from committed text: checkpoints (round trip,
// torn writes ignored), resume bit-identity, SIGINT-style stops, NaN handling, and evaluation.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <omp.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "experiments/data/build_dataset.h"
#include "experiments/data/dataset.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run.h"
#include "experiments/train/run_eval.h"
#include "runner_fixture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe;
using namespace remoe::experiments;

using test::losses;
using test::temp_root;
using test::tiny_dataset;
using test::tiny_run;

TEST_CASE("dataset: remoe data builds shards and a manifest, and a second run does nothing") {
  fs::path d = tiny_dataset();
  data::DatasetInfo info = data::load_dataset(d);
  CHECK(info.domains == std::vector<std::string>{"legal", "prose"});
  CHECK(info.vocab_size == 512);
  const auto stamp = fs::last_write_time(d / "train.bin");
  data::BuildOptions o;
  o.out = d;
  o.skip_corpus = true;
  o.vocab_size = 512;
  o.tokenizer_sample_mb = 1;
  data::build_dataset(o);  // idempotent: same options, valid files -> untouched
  CHECK(fs::last_write_time(d / "train.bin") == stamp);
}

TEST_CASE("runner: a resumed run is bit-identical to an uninterrupted one (CPU)") {
  RunResult straight = run_training(tiny_run("straight", 20));
  REQUIRE(straight.end == RunEnd::Finished);

  RunOptions first = tiny_run("resumed", 20);
  first.before_step = [](int64_t step, Transformer&) {
    if (step == 9) stop_requested().store(true);  // as SIGINT would: stop after 10 steps
  };
  RunResult half = run_training(std::move(first));
  REQUIRE(half.end == RunEnd::Interrupted);
  CHECK(half.steps_done == 10);
  CHECK(fs::exists(half.dir / "ckpt/step_10/model.safetensors"));

  RunOptions second = tiny_run("resumed", 20);
  second.resume = true;
  RunResult rest = run_training(std::move(second));
  REQUIRE(rest.end == RunEnd::Finished);

  std::vector<double> a = losses(straight.dir), b = losses(rest.dir);
  REQUIRE(a.size() == 20);
  REQUIRE(b.size() == 20);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(a[i] == b[i]);  // exactly
  }
  CHECK(test::read_file_bytes(straight.dir / "ckpt/step_20/model.safetensors") == test::read_file_bytes(rest.dir / "ckpt/step_20/model.safetensors"));
  CHECK(test::read_file_bytes(straight.dir / "ckpt/step_20/optimizer.safetensors") ==
        test::read_file_bytes(rest.dir / "ckpt/step_20/optimizer.safetensors"));
  CHECK(nlohmann::json::parse(test::read_file_bytes(straight.dir / "ckpt/step_20/state.json"))["lambda"] ==
        nlohmann::json::parse(test::read_file_bytes(rest.dir / "ckpt/step_20/state.json"))["lambda"]);

  // A second start without --resume must not overwrite the finished run.
  CHECK_THROWS_WITH_ALL(run_training(tiny_run("straight", 20)), "already holds a run", "--resume", "--fresh");
}

TEST_CASE("checkpoints: round trip of every tensor and lambda; torn or corrupt ones are skipped") {
  fs::path root = temp_root() / "ckpt_rt";
  ModelConfig mc;
  mc.vocab_size = 50;
  mc.d_model = 16;
  mc.n_layers = 1;
  mc.n_heads = 2;
  mc.n_kv_heads = 2;
  mc.num_experts = 4;
  mc.seed = 3;
  Transformer model(mc);
  AdamW opt(model.named_parameters());
  TrainState state{7, {3.5e-4, 7}, 99, nlohmann::ordered_json::object()};
  fs::path dir = save_checkpoint(root, model, opt, state);
  CHECK(dir == root / "step_7");

  mc.seed = 4;  // different weights, then overwritten by the load
  Transformer other(mc);
  AdamW other_opt(other.named_parameters());
  TrainState back = load_checkpoint(dir, other, &other_opt);
  CHECK(back.step == 7);
  CHECK(back.controller.lambda == 3.5e-4);
  CHECK(back.controller.updates == 7);
  CHECK(back.data_seed == 99);
  NamedTensors pa = model.named_parameters(), pb = other.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].second.to_vector<float>() == pb[i].second.to_vector<float>());

  // A torn write (temp dir left behind), a newer checkpoint with a corrupted file, and a stray
  // directory: --resume must still pick step_7.
  fs::create_directories(root / ".tmp-step_9-12345");
  std::ofstream(root / ".tmp-step_9-12345/model.safetensors") << "partial";
  fs::copy(dir, root / "step_8", fs::copy_options::recursive);
  {
    auto state = nlohmann::json::parse(test::read_file_bytes(root / "step_8/state.json"));
    state["step"] = 8;  // a checkpoint of step 8 in every respect but its damaged weights
    std::ofstream(root / "step_8/state.json", std::ios::trunc) << state.dump(2);
  }
  {
    std::fstream f(root / "step_8/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  fs::create_directories(root / "step_x");
  CHECK(verify_checkpoint(root / "step_8").value_or("") == "model.safetensors fails its checksum");
  CHECK(latest_checkpoint(root).value() == root / "step_7");
  CHECK_THROWS_WITH_ALL(load_checkpoint(root / "step_8", other, &other_opt), "step_8", "checksum");

  // Loading into a model of another shape names the tensor and both shapes.
  mc.d_model = 32;
  Transformer wrong(mc);
  CHECK_THROWS_WITH_ALL(load_checkpoint(dir, wrong, nullptr), "embed", "[50, 16]", "[50, 32]");
}

TEST_CASE("runner: a NaN stops training with a message and keeps the last good checkpoint") {
  RunOptions o = tiny_run("nan", 20);
  o.config.set("ckpt.interval", int64_t{4});
  o.before_step = [](int64_t step, Transformer& model) {
    if (step == 6) {
      NoGradGuard g;
      Tensor w = model.parameter("lm_head");
      copy_(w, full(w.shape(), std::nan("")));
    }
  };
  RunResult r = run_training(std::move(o));
  CHECK(r.end == RunEnd::Failed);
  CHECK(r.message.find("step 6") != std::string::npos);
  CHECK(r.message.find("non-finite") != std::string::npos);
  auto latest = latest_checkpoint(r.dir / "ckpt");
  REQUIRE(latest.has_value());
  CHECK(*latest == r.dir / "ckpt/step_4");
  Config c;
  c.apply_file(r.dir / "config.toml");
  c.finalize();
  Transformer model(c.model_config(data::load_dataset(tiny_dataset()).vocab_size));
  load_checkpoint(*latest, model, nullptr);
  int64_t non_finite = 0;
  for (const auto& [name, t] : model.named_parameters())
    for (float v : t.to_vector<float>()) non_finite += !std::isfinite(v);
  CHECK(non_finite == 0);
  auto summary = nlohmann::json::parse(test::read_file_bytes(r.dir / "summary.json"));
  CHECK(summary["end"] == "failed");
}

TEST_CASE("runner: eval of a run gives held-out loss per domain") {
  RunResult r = run_training(tiny_run("for_eval", 12));
  REQUIRE(r.end == RunEnd::Finished);
  RunEvalOptions e;
  e.run_dir = r.dir;
  e.zero_shot = false;
  nlohmann::ordered_json j = evaluate_run(e);
  CHECK(j["step"] == 12);
  REQUIRE(j["heldout"]["domains"].size() == 2);
  for (const auto& [name, d] : j["heldout"]["domains"].items()) {
    CHECK(d["loss"].get<double>() > 0);
    CHECK(d["loss"].get<double>() < std::log(512.0) + 0.5);  // learned something, at least not worse than uniform
    CHECK(d["bpb"].get<double>() > 0);
  }
  CHECK(fs::exists(r.dir / "eval.json"));
  CHECK(eval_markdown(j).find("| legal |") != std::string::npos);
}

TEST_CASE("runner: deterministic resume refuses another thread count") {
  RunOptions first = tiny_run("threads", 8);
  first.config.set("ckpt.interval", int64_t{4});
  first.before_step = [](int64_t step, Transformer&) {
    if (step == 3) stop_requested().store(true);
  };
  REQUIRE(run_training(std::move(first)).end == RunEnd::Interrupted);
  const int before = omp_get_max_threads();
  RunOptions second = tiny_run("threads", 8);
  second.resume = true;
  second.config.set("ckpt.interval", int64_t{4});
  second.config.set("system.threads", int64_t{before + 1});
  CHECK_THROWS_WITH_ALL(run_training(std::move(second)), "--resume", "thread(s)", "system.threads");
  omp_set_num_threads(before);  // run_training applied system.threads process-wide
}
