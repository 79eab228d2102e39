#include "experiments/train/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "core/random.h"
#include "experiments/data/dataset.h"
#include "experiments/data/shard.h"
#include "experiments/eval/heldout.h"
#include "experiments/train/batch_sampler.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run_info.h"
#include "experiments/train/throughput.h"
#include "models/train_step.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {

extern "C" void on_stop_signal(int) { stop_requested().store(true); }

// Installs the SIGINT/SIGTERM handler for the lifetime of a run and restores the old ones after.
class StopSignalScope {
 public:
  StopSignalScope() {
    stop_requested().store(false);
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignalScope() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

void append_line(const fs::path& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
  REMOE_CHECK(out, "run: cannot append to ", path.string());
}

void write_json(const fs::path& path, const ordered_json& j) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    REMOE_CHECK(out, "run: cannot write ", tmp.string());
  }
  fs::rename(tmp, path);
}

// Per-layer MoE statistics of a step: tokens per expert, dead experts and sparsity.
ordered_json layer_stats(const StepMetrics& m, int64_t experts) {
  ordered_json layers = ordered_json::array();
  for (const std::vector<int64_t>& counts : m.expert_counts) {
    int64_t active = 0, dead = 0;
    for (int64_t c : counts) {
      active += c;
      dead += c == 0;
    }
    layers.push_back({{"tokens_per_expert", counts},
                      {"dead_experts", dead},
                      {"sparsity", 1.0 - static_cast<double>(active) / static_cast<double>(m.tokens * experts)}});
  }
  return layers;
}

int64_t info_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

RunResult run_training(RunOptions options) {
  Config& cfg = options.config;
  cfg.finalize();
  if (cfg.integer("system.threads") > 0) {
#ifdef _OPENMP
    omp_set_num_threads(static_cast<int>(cfg.integer("system.threads")));
#endif
  }
  const std::string device = resolve_device(cfg.string("system.device"));

  // ---- data and model ----
  const data::DatasetInfo dataset = data::load_dataset(cfg.string("data.dir"));
  data::Shard train_shard = data::Shard::open(dataset.train_shard);
  data::Shard valid_shard = data::Shard::open(dataset.valid_shard);
  const ModelConfig model_config = cfg.model_config(dataset.vocab_size);
  Transformer model(model_config);
  const int64_t steps = cfg.integer("train.steps"), seq_len = cfg.integer("model.seq_len");
  const int64_t batch = cfg.integer("train.batch_size"), micro = cfg.integer("train.micro_batches");
  const int64_t warmup = cfg.integer("train.warmup_steps") >= 0 ? cfg.integer("train.warmup_steps") : steps / 100;
  AdamWOptions adamw;
  adamw.weight_decay = cfg.real("train.weight_decay");
  Trainer trainer(model, adamw, LrSchedule{cfg.real("train.lr"), cfg.real("train.min_lr"), warmup, steps},
                  cfg.real("train.clip"), cfg.real("moe.l1_coeff_init"), cfg.real("moe.l1_coeff_multiplier"));
  const uint64_t data_seed = static_cast<uint64_t>(cfg.integer("run.seed"));
  BatchSampler sampler(train_shard, batch, seq_len, data_seed);

  // ---- the run directory ----
  RunResult result;
  result.dir = fs::path(cfg.string("run.dir")) / cfg.string("run.name");
  const fs::path ckpt_root = result.dir / "ckpt";
  int64_t start_step = 0;
  if (options.resume) {
    auto latest = latest_checkpoint(ckpt_root);
    REMOE_CHECK(latest.has_value(), "--resume: no complete checkpoint under ", ckpt_root.string());
    TrainState state = load_checkpoint(*latest, model, &trainer.optimizer());
    REMOE_CHECK(state.data_seed == data_seed, "--resume: the checkpoint's data seed ", state.data_seed,
                " differs from run.seed = ", data_seed);
    // CPU reductions are split per thread: the same bytes need the same thread count.
    const int64_t threads_now = info_threads();
    if (cfg.boolean("train.deterministic") && state.extra.contains("threads"))
      REMOE_CHECK(state.extra["threads"].get<int64_t>() == threads_now, "--resume: the checkpoint was written with ",
                  state.extra["threads"].get<int64_t>(), " thread(s), this process has ", threads_now,
                  "; set --system.threads=", state.extra["threads"].get<int64_t>(),
                  " (train.deterministic = true needs the same count to stay bit-identical)");
    trainer.controller().load_state(state.controller);
    trainer.set_steps_taken(state.step);
    start_step = state.step;
    append_line(result.dir / "train.log", fmt::format("resumed from {} (step {})", latest->string(), start_step));
  } else {
    REMOE_CHECK(!fs::exists(result.dir / "metrics.jsonl"), "run directory ", result.dir.string(),
                " already holds a run: continue it with --resume, or choose another --run.name");
    fs::create_directories(result.dir);
  }
  {
    std::ofstream out(result.dir / "config.toml");
    out << cfg.to_toml();
  }
  const double gemm_gflops = measure_gemm_peak(1024, 3).median_gflops;
  ordered_json info = describe_run(options.argv, device, cfg);
  info["parameters"] = model.num_parameters();
  info["gemm_peak_gflops"] = gemm_gflops;
  info["dataset"] = {{"dir", dataset.dir.string()}, {"vocab_size", dataset.vocab_size}, {"domains", dataset.domains},
                     {"train_tokens", train_shard.n_tokens()}, {"valid_tokens", valid_shard.n_tokens()}};
  write_json(result.dir / "run.json", info);

  auto log = [&](const std::string& line) {
    if (!options.quiet) std::cout << line << std::endl;
    append_line(result.dir / "train.log", line);
  };
  auto metrics_row = [&](const ordered_json& row) { append_line(result.dir / "metrics.jsonl", row.dump()); };
  const int64_t experts = model_config.experts();
  auto save = [&](int64_t step_done) {
    TrainState s{step_done, trainer.controller().state(), data_seed, {{"threads", info_threads()}}};
    fs::path dir = save_checkpoint(ckpt_root, model, trainer.optimizer(), s);
    prune_checkpoints(ckpt_root, cfg.integer("ckpt.keep"));
    return dir;
  };
  ordered_json last_eval;
  auto evaluate = [&](int64_t step_done) {
    auto t0 = Clock::now();
    eval::HeldoutOptions ho;
    ho.seq_len = seq_len;
    ho.batch_size = batch;
    ho.max_tokens_per_domain = cfg.integer("eval.max_tokens");
    eval::HeldoutResult r = eval::heldout_eval(model, valid_shard, dataset.domains, ho);
    ordered_json row = {{"kind", "eval"}, {"step", step_done}, {"valid_loss", r.overall.loss}, {"valid_bpb", r.overall.bpb}};
    for (const eval::DomainLoss& d : r.domains)
      row["domains"][d.domain] = {{"loss", d.loss}, {"bpb", d.bpb}, {"tokens", d.tokens}};
    metrics_row(row);
    log(fmt::format("eval step {} | valid loss {:.4f} | bpb {:.4f} | {:.1f}s", step_done, r.overall.loss, r.overall.bpb,
                    std::chrono::duration<double>(Clock::now() - t0).count()));
    last_eval = row;
  };

  log(fmt::format("run {} | {} | {} params | {} on {} thread(s) | GEMM peak {:.1f} GFLOP/s", result.dir.string(),
                  model_config.ffn, model.num_parameters(), device, info["threads"].get<int64_t>(), gemm_gflops));

  // ---- the loop ----
  StopSignalScope signals;
  std::vector<double> step_ms;
  double loss_sum = 0, reg_sum = 0, sparsity_sum = 0, gnorm_sum = 0;
  int64_t window = 0, tokens_done = 0;
  const auto run_start = Clock::now();
  StepMetrics m;
  for (int64_t step = start_step; step < steps; ++step) {
    if (stop_requested().load()) {
      fs::path dir = save(step);
      result.end = RunEnd::Interrupted;
      result.message = "interrupted by a signal at step " + std::to_string(step) + "; checkpoint " + dir.string();
      break;
    }
    if (options.before_step) options.before_step(step, model);
    std::vector<Batch> batches = sampler.step_batches(step, micro);
    const auto t0 = Clock::now();
    try {
      m = trainer.step(batches);
    } catch (const Error& e) {
      result.end = RunEnd::Failed;
      result.message = std::string("training stopped at step ") + std::to_string(step) + ": " + e.what() +
                       " (weights unchanged; the last good checkpoint is kept)";
      metrics_row({{"kind", "error"}, {"step", step}, {"message", e.what()}});
      break;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    step_ms.push_back(ms);
    tokens_done += m.tokens;
    loss_sum += m.lm_loss;
    reg_sum += model_config.ffn == "topk" ? m.aux_loss : m.lambda * m.reg_loss;
    sparsity_sum += m.sparsity;
    gnorm_sum += m.grad_norm;
    ++window;
    const int64_t done = step + 1;
    result.steps_done = done;
    if (done % cfg.integer("log.interval") == 0 || done == steps) {
      const double med_ms = median(std::vector<double>(
          step_ms.end() - std::min<ptrdiff_t>(static_cast<ptrdiff_t>(window), static_cast<ptrdiff_t>(step_ms.size())),
          step_ms.end()));
      const double tok_s = static_cast<double>(m.tokens) / (med_ms / 1000.0);
      const double active = active_experts_per_token(model_config, sparsity_sum / static_cast<double>(window));
      const double mfu = training_flops_per_token(model_config, seq_len, active) * tok_s / (gemm_gflops * 1e9);
      const double eta_s = med_ms / 1000.0 * static_cast<double>(steps - done);
      const double n = static_cast<double>(window);
      ordered_json row = {{"kind", "train"},  {"step", done},           {"loss", loss_sum / n},
                          {"lm_loss", m.lm_loss}, {"aux_or_reg", reg_sum / n}, {"sparsity", sparsity_sum / n},
                          {"lambda", m.lambda},    {"lr", m.lr},            {"grad_norm", gnorm_sum / n},
                          {"ms_per_step", med_ms}, {"tokens_per_s", tok_s}, {"mfu", mfu},
                          {"active_experts_per_token", active}, {"tokens", tokens_done}};
      if (model.is_moe()) row["layers"] = layer_stats(m, experts);
      metrics_row(row);
      std::string moe_part;
      if (model_config.ffn == "topk") moe_part = fmt::format(" | aux {:.4f}", reg_sum / n);
      if (model_config.ffn == "relu")
        moe_part = fmt::format(" | λ·L1 {:.2e} | S {:.3f} | λ {:.2e}", reg_sum / n, sparsity_sum / n, m.lambda);
      log(fmt::format("step {:>6}/{} | loss {:.4f}{} | lr {:.2e} | gnorm {:.3f} | {:.0f} ms/step | {:.0f} tok/s | "
                      "MFU {:.1f}% | ETA {}",
                      done, steps, loss_sum / n, moe_part, m.lr, gnorm_sum / n, med_ms, tok_s, 100 * mfu,
                      duration_text(eta_s)));
      loss_sum = reg_sum = sparsity_sum = gnorm_sum = 0;
      window = 0;
    }
    const int64_t eval_every = cfg.integer("eval.interval"), ckpt_every = cfg.integer("ckpt.interval");
    if (eval_every > 0 && done % eval_every == 0 && done < steps) evaluate(done);
    if (ckpt_every > 0 && done % ckpt_every == 0 && done < steps) save(done);
  }
  if (result.end == RunEnd::Finished) {
    result.steps_done = steps;
    evaluate(steps);
    save(steps);
  }
  // The caller prints why the run stopped; the log file keeps it too.
  if (result.end != RunEnd::Finished) append_line(result.dir / "train.log", result.message);

  const double median_ms = step_ms.empty() ? 0.0 : median(step_ms);
  ordered_json summary = {{"end", result.end == RunEnd::Finished ? "finished"
                                  : result.end == RunEnd::Interrupted ? "interrupted" : "failed"},
                          {"message", result.message},
                          {"steps", result.steps_done},
                          {"router", model_config.ffn},
                          {"parameters", model.num_parameters()},
                          {"wall_seconds", std::chrono::duration<double>(Clock::now() - run_start).count()},
                          {"median_ms_per_step", median_ms},
                          {"tokens_per_s", step_ms.empty() ? 0.0 : static_cast<double>(batch * micro * seq_len) / (median_ms / 1000.0)},
                          {"final_train_loss", m.lm_loss},
                          {"final_sparsity", m.sparsity},
                          {"final_lambda", m.lambda},
                          {"last_eval", last_eval}};
  write_json(result.dir / "summary.json", summary);
  return result;
}

}  // namespace remoe::experiments
