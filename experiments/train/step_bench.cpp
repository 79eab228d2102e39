// `remoe bench train-step` (issue "Model and training on CPU"): times Trainer::step (forward,
// backward, grad-norm clipping, AdamW, λ update) on one of the two benchmark configurations and one
// FFN kind (`remoe bench gemm` measures the GEMM peak).
// experiments/bench/train_step/compare.py runs it against the PyTorch step (torch_step.py).
//
// The learning rate is a tiny constant (default 1e-7): its value does not change the cost of a
// step, and a tiny one keeps the routing (hence the work per step) where the row says it is for
// the whole run (Adam moves every weight by ~lr per step whatever the gradient: at 1e-5 the
// relu_target sparsity drifted from 0.87 to 0.62 within 23 steps of config B). --save-init writes
// the initial weights and the batch as safetensors and --init reads them back: compare.py builds
// each row's model once and both remoe and torch_step.py then train exactly that model on exactly
// the same tokens (same routing).
#include "experiments/train/step_bench.h"

#include "core/comm.h"
#include "experiments/data/dataset.h"
#include "experiments/train/run_info.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "experiments/train/run_info.h"
#include "experiments/train/throughput.h"
#include "models/router_registry.h"
#include "models/train_step.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace remoe::experiments {
namespace {

// The benchmark mode "ReMoE's ReLU router with its weights set to the target sparsity" (below).
constexpr const char* kReluTarget = "relu_target";

using Clock = std::chrono::steady_clock;

struct BenchShape {
  int64_t vocab, d, layers, heads, experts, topk, width, seq, batch;
};

// The two configurations of the issue (no GQA: n_kv_heads = n_heads).
BenchShape bench_shape(const std::string& name) {
  if (name == "A") return {4096, 128, 4, 4, 8, 1, 512, 128, 16};
  if (name == "B") return {8192, 256, 6, 8, 8, 1, 1024, 256, 8};
  remoe::fail("--config = '", name, "' is not one of A, B");
}

remoe::ModelConfig model_config(const BenchShape& s, const std::string& router, uint64_t seed) {
  remoe::ModelConfig c;
  c.vocab_size = s.vocab;
  c.d_model = s.d;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.heads;
  c.ffn = router == kReluTarget ? std::string("relu") : router;  // relu_target: ReMoE's router set to its target
  remoe::router_spec(c.ffn);  // an unknown router is an error listing the registered ones
  c.num_experts = s.experts;
  c.topk = s.topk;
  c.ffn_hidden = s.width;  // dense: one SwiGLU of width k·ffn_hidden (DenseFFN)
  c.seed = seed;
  return c;
}

// What is timed: the model, one micro-batch's shape, and a label for the output.
struct BenchSetup {
  remoe::ModelConfig model;
  int64_t seq, batch;
  std::string label;
};

BenchSetup bench_setup(const StepBenchOptions& o) {
  if (!o.train_config) {
    const BenchShape s = bench_shape(o.config);
    return {model_config(s, o.router, o.seed), s.seq, s.batch, o.config};
  }
  const Config& cfg = *o.train_config;
  const std::filesystem::path data = cfg.string("data.dir");
  const int64_t vocab =
      std::filesystem::exists(data / "dataset.json") ? data::load_dataset(data.string()).vocab_size : o.vocab;
  BenchSetup b{cfg.model_config(vocab), cfg.integer("model.seq_len"), cfg.integer("train.batch_size"), "custom"};
  if (o.router_given) b.model.ffn = o.router == kReluTarget ? std::string("relu") : o.router;
  else REMOE_CHECK(o.router != kReluTarget, "bench train-step: relu_target needs --router");
  b.model.seed = o.seed;
  return b;
}

// Sparsity of one no-grad forward pass, overall and per layer: 1 − active pairs / (T·E).
std::vector<double> forward_sparsity(const remoe::Transformer& model, const Tensor& inputs) {
  remoe::NoGradGuard guard;
  remoe::ForwardOutput out = model.forward(inputs);
  std::vector<double> per_layer;
  for (const remoe::RouterOutput& r : out.layers) per_layer.push_back(remoe::routing_sparsity(r.active_pairs, r.tokens * r.experts));
  return per_layer;
}

// ReLU routing at its target sparsity 1 − k/E without training to it. A router without bias,
// fed inputs that are symmetric about 0 (as at init), has every logit positive with probability
// 1/2 whatever its weights: only a direction shared by all tokens can shift the logits. So:
//  1. every embedding row gets the same vector m·u (u a random unit vector, |m·u| = the typical
//     row norm), which the residual stream, and so every router input, carries (trained models
//     have such a shared component too);
//  2. each layer's router columns get −β_l·u, which lowers every expert's logit by β_l·(x·u).
// β_l is found by bisection, layer by layer (a router only affects the layers after it), so that
// the fraction of positive logits of layer l on the benchmark batch is k/E. Every expert keeps the
// same expected load, and the number of experts per token varies (0, 1, 2, ...) as in ReMoE.
// Routing is per token, so the bisection looks at the first sequences of the batch only (at least
// 512 tokens: the sparsity is then measured to about ±0.5%). Returns the per-layer sparsity reached.
std::vector<double> make_relu_sparse(remoe::Transformer& model, const Tensor& batch_inputs, uint64_t seed) {
  const remoe::ModelConfig& c = model.config();
  const int64_t rows = std::min(batch_inputs.size(0), (511 + batch_inputs.size(1)) / batch_inputs.size(1));
  const Tensor inputs = remoe::contiguous(remoe::slice(batch_inputs, 0, 0, rows));
  const int64_t d = c.d_model, E = c.experts();
  const double target = remoe::target_sparsity(c.active(), E);
  remoe::Generator gen(seed ^ 0x5eed5eedULL);
  std::vector<double> u(static_cast<size_t>(d));
  double norm = 0;
  for (double& x : u) {
    x = remoe::philox_normal(gen.seed, gen.offset++);
    norm += x * x;
  }
  for (double& x : u) x /= std::sqrt(norm);
  {
    remoe::NoGradGuard guard;
    Tensor embed = model.parameter("embed");
    float* e = embed.data<float>();
    const double m = remoe::kInitStd * std::sqrt(static_cast<double>(d));
    for (int64_t v = 0; v < c.vocab_size; ++v)
      for (int64_t j = 0; j < d; ++j) e[v * d + j] += static_cast<float>(m * u[static_cast<size_t>(j)]);
  }
  std::vector<double> achieved;
  double prev_beta = 1e-3;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Tensor router = model.parameter("layers." + std::to_string(l) + ".ffn.router");  // [d, E]
    std::vector<float> original = router.to_vector<float>();
    auto set_beta = [&](double beta) {
      float* w = router.data<float>();
      for (int64_t j = 0; j < d; ++j)
        for (int64_t e = 0; e < E; ++e)
          w[j * E + e] = static_cast<float>(original[static_cast<size_t>(j * E + e)] - beta * u[static_cast<size_t>(j)]);
    };
    // Sparsity grows with β; bracket the target (the layers need similar β), then bisect.
    double lo = 0, hi = 1.5 * prev_beta;
    set_beta(hi);
    while (forward_sparsity(model, inputs)[static_cast<size_t>(l)] < target) {
      lo = hi;
      hi *= 2;
      REMOE_CHECK(hi < 1e3, "relu_target: could not reach sparsity ", target, " in layer ", l);
      set_beta(hi);
    }
    double sp = 0, mid = hi;
    for (int it = 0; it < 16; ++it) {
      mid = 0.5 * (lo + hi);
      set_beta(mid);
      sp = forward_sparsity(model, inputs)[static_cast<size_t>(l)];
      if (std::abs(sp - target) < 3e-3) break;
      (sp < target ? lo : hi) = mid;
    }
    prev_beta = mid;
    achieved.push_back(sp);
  }
  return achieved;
}

// Per-phase wall times of a step (--breakdown), in milliseconds, one entry per timed step.
struct PhaseTimes {
  std::map<std::string, std::vector<double>> ms;
};

// Copies the weights of `path` (written by --save-init for the same config and router) into the
// model and returns the batch stored with them.
remoe::Batch load_init(remoe::Transformer& model, const std::string& path) {
  std::map<std::string, Tensor> file = remoe::load_safetensors(path);
  remoe::NoGradGuard guard;
  for (auto& [name, p] : model.named_parameters()) {
    auto it = file.find(name);
    REMOE_CHECK(it != file.end(), "--init ", path, ": no tensor \"", name, "\" (another config or router?)");
    REMOE_CHECK(it->second.shape() == p.shape() && it->second.dtype() == p.dtype(), "--init ", path, ": \"", name,
                "\" is ", remoe::shape_str(it->second.shape()), ", the model's ", remoe::shape_str(p.shape()));
    std::copy_n(it->second.data<float>(), p.numel(), p.data<float>());
  }
  for (const char* key : {"__inputs", "__targets"})
    REMOE_CHECK(file.count(key), "--init ", path, ": no tensor \"", key, "\"");
  return {file.at("__inputs"), file.at("__targets")};
}

}  // namespace

nlohmann::json run_step_bench(const StepBenchOptions& o) {
  const BenchSetup s = bench_setup(o);
  const remoe::ModelConfig& mc = s.model;
  auto t_build = Clock::now();
  remoe::Transformer model(mc);
  nlohmann::json out;
  remoe::Batch batch;
  if (!o.init.empty()) {
    batch = load_init(model, o.init);
    REMOE_CHECK(batch.inputs.shape() == remoe::Shape({s.batch, s.seq}), "--init ", o.init, ": batch is ",
                remoe::shape_str(batch.inputs.shape()), ", config ", s.label, " needs [", s.batch, ", ", s.seq, "]");
  } else {
    remoe::Generator data_gen(o.seed + 1);
    Tensor seq = remoe::randint({s.batch, s.seq + 1}, 0, mc.vocab_size, data_gen);
    batch = {remoe::contiguous(remoe::slice(seq, 1, 0, s.seq)), remoe::contiguous(remoe::slice(seq, 1, 1, s.seq + 1))};
    if (o.router == kReluTarget) out["relu_target_layer_sparsity"] = make_relu_sparse(model, batch.inputs, o.seed);
  }
  if (!o.save_init.empty()) {
    remoe::NamedTensors tensors = model.named_parameters();
    tensors.emplace_back("__inputs", batch.inputs);
    tensors.emplace_back("__targets", batch.targets);
    remoe::save_safetensors(o.save_init, tensors, {{"config", o.config}, {"router", o.router}});
  }
  const double setup_s = std::chrono::duration<double>(Clock::now() - t_build).count();
  out["setup_s"] = setup_s;
  if (o.init_only) return out;
  // After the setup (make_relu_sparse shapes the routing with f32 GEMMs): the timed steps' precision.
  out["precision"] = apply_matmul_precision(
      !o.precision.empty() ? o.precision : o.train_config ? o.train_config->string("train.precision") : "f32");

  remoe::AdamWOptions adamw;  // β (0.9, 0.999), eps 1e-8, weight decay 0.01 (docs/model.md)
  adamw.lr = o.lr;
  remoe::LrSchedule schedule{o.lr, o.lr, 0, 1'000'000'000};  // constant lr
  remoe::Trainer trainer(model, adamw, schedule, /*clip_norm=*/1.0);
  std::shared_ptr<remoe::Communicator> world = remoe::world_communicator();
  if (world->size() > 1 || o.expert_parallel > 1) {
    trainer.set_data_parallel(world);
    if (o.expert_parallel > 1) trainer.set_expert_parallel(o.expert_parallel);
  }
  std::vector<double> comm_ms, a2a_mb, all_reduce_mb;  // per timed step, this rank's
  // One step; its wall time (and, with --breakdown, its phases) go to the lists when `record`.
  std::vector<double> ms, sparsity, loss;
  PhaseTimes phases;
  bool recording = false;
  auto lap = Clock::now();
  if (o.breakdown)
    trainer.set_phase_hook([&](const char* name) {
      const auto now = Clock::now();
      if (recording) phases.ms[name].push_back(std::chrono::duration<double, std::milli>(now - lap).count());
      lap = now;
    });
  auto one_step = [&](bool record) {
    world->barrier();  // every rank starts the step together: the wall time is the job's
    world->reset_counters();
    auto t0 = Clock::now();
    recording = record;
    lap = t0;
    remoe::StepMetrics m = trainer.step({batch});
    const double t = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (record) {
      const remoe::CommCounters& c = world->counters();
      comm_ms.push_back(c.seconds * 1e3);
      a2a_mb.push_back(static_cast<double>(c.all_to_all_bytes) * 1e-6);
      all_reduce_mb.push_back(static_cast<double>(c.all_reduce_bytes) * 1e-6);
      ms.push_back(t);
      sparsity.push_back(m.sparsity);
      loss.push_back(m.loss);
    }
    return nlohmann::json{{"ms", t}, {"sparsity", m.sparsity}, {"loss", m.loss}};
  };
  if (o.serve) {
    // Driven by compare.py, which alternates the steps of remoe and PyTorch so that both see the
    // same machine load: "ready" once built, then one JSON line per "step" command (every step
    // is recorded; the driver decides which are warm-up), until "end" or end of input.
    std::cout << nlohmann::json{{"ready", true}, {"setup_s", setup_s}}.dump() << std::endl;
    std::string cmd;
    while (std::getline(std::cin, cmd) && cmd != "end") {
      REMOE_CHECK(cmd == "step", "--serve: unknown command '", cmd, "' (step, end)");
      std::cout << one_step(true).dump() << std::endl;
    }
  } else {
    for (int i = 0; i < o.warmup + o.steps; ++i) one_step(i >= o.warmup);
  }
  REMOE_CHECK(!ms.empty(), "no step was timed");
  if (o.breakdown) {
    nlohmann::json ph;
    for (const auto& [name, v] : phases.ms) ph[name] = {{"median_ms", median(v)}, {"ms", v}};
    out["phases"] = ph;
  }
  // Model FLOPs of a step, with the experts per token measured on the timed steps (relu).
  double mean_sparsity = 0;
  for (double x : sparsity) mean_sparsity += x / static_cast<double>(sparsity.size());
  const double active = active_experts_per_token(mc, mean_sparsity);
  const double flops = training_flops_per_token(mc, s.seq, active) * static_cast<double>(s.batch * s.seq);
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  out.update({{"impl", "remoe"},
              {"config", s.label},
              {"router", o.router_given || !o.train_config ? o.router : mc.ffn},
              {"model", {{"vocab", mc.vocab_size}, {"d_model", mc.d_model}, {"n_layers", mc.n_layers},
                         {"n_heads", mc.n_heads}, {"n_kv_heads", mc.n_kv_heads}, {"experts", mc.experts()},
                         {"topk", mc.topk}, {"granularity", mc.granularity}}},
              {"threads", threads},
              {"host", describe_host()},
              {"batch", s.batch},
              {"seq", s.seq},
              {"tokens_per_step", s.batch * s.seq},  // the global batch, over every rank
              {"world_size", world->size()},
              {"expert_parallel", o.expert_parallel},
              {"tokens_per_s", static_cast<double>(s.batch * s.seq) / (median(ms) * 1e-3)},
              {"comm_ms", comm_ms},
              {"median_comm_ms", comm_ms.empty() ? 0.0 : median(comm_ms)},
              {"all_to_all_mb_per_step", a2a_mb.empty() ? 0.0 : median(a2a_mb)},
              {"all_reduce_mb_per_step", all_reduce_mb.empty() ? 0.0 : median(all_reduce_mb)},
              {"num_parameters", model.num_parameters()},
              {"active_experts_per_token", active},
              {"model_gflop_per_step", flops * 1e-9},
              {"lr", o.lr},
              {"warmup", o.serve ? 0 : o.warmup},  // in --serve mode the driver discards warm-up steps
              {"step_ms", ms},
              {"median_ms", median(ms)},
              {"sparsity", sparsity},
              {"loss", loss}});
  return out;
}

}  // namespace remoe::experiments
