#include "experiments/train/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/node.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/random.h"
#include "experiments/data/dataset.h"
#include "experiments/data/shard.h"
#include "experiments/eval/heldout.h"
#include "experiments/train/batch_sampler.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run_info.h"
#include "experiments/train/run_lock.h"
#include "experiments/train/throughput.h"
#include "models/router_registry.h"
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

// Installs the SIGINT/SIGTERM/SIGHUP handler for the lifetime of a run and restores the old ones
// after. SIGHUP (the terminal or ssh session went away) stops cleanly too instead of killing the
// process between checkpoints.
class StopSignalScope {
 public:
  StopSignalScope() {
    stop_requested().store(false);
    for (size_t i = 0; i < std::size(kSignals); ++i) old_[i] = std::signal(kSignals[i], on_stop_signal);
  }
  ~StopSignalScope() {
    for (size_t i = 0; i < std::size(kSignals); ++i) std::signal(kSignals[i], old_[i]);
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  void (*old_[std::size(kSignals)])(int);
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

// Writes a file through a temp file and a rename, so a kill never leaves it half written.
void write_text_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
    REMOE_CHECK(out, "run: cannot write ", tmp.string());
  }
  fs::rename(tmp, path);
}

void write_json(const fs::path& path, const ordered_json& j) { write_text_atomically(path, j.dump(2) + "\n"); }

ordered_json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  REMOE_CHECK(in, "run: cannot open ", path.string());
  try {
    return ordered_json::parse(in);
  } catch (const std::exception& e) {
    fail("run: ", path.string(), " is not valid JSON: ", e.what());
  }
}

// metrics.jsonl, one object per line.
std::vector<ordered_json> read_metrics(const fs::path& path) {
  std::vector<ordered_json> rows;
  std::ifstream in(path);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      rows.push_back(ordered_json::parse(line));
    } catch (const std::exception& e) {
      // A kill during an append can leave a torn last line; anything else is corruption.
      REMOE_CHECK(in.peek() == EOF, "run: ", path.string(), " line ", n, " is not JSON: ", e.what());
    }
  }
  return rows;
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
                      {"sparsity", routing_sparsity(active, m.tokens * experts)}});
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

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buffer;
}

// ---------------------------------------------------------------------------------------------
// The data and the model of a run, opened and checked before anything is written.

AdamWOptions adamw_options(const Config& cfg) {
  AdamWOptions o;
  o.weight_decay = cfg.real("train.weight_decay");
  return o;
}

LrSchedule lr_schedule(const Config& cfg) {
  const int64_t steps = cfg.integer("train.steps");
  const int64_t warmup = cfg.integer("train.warmup_steps") >= 0 ? cfg.integer("train.warmup_steps") : steps / 100;
  return {cfg.real("train.lr"), cfg.real("train.min_lr"), warmup, steps};
}

// train.clip = 0 means "no clipping" (--help-config): an infinite bound never scales.
double clip_norm(const Config& cfg) {
  const double clip = cfg.real("train.clip");
  return clip > 0 ? clip : std::numeric_limits<double>::infinity();
}

struct RunSetup {
  const Config& cfg;
  // The processes of the run (mpirun -np N): every rank trains its share of each step, rank 0
  // alone writes the run directory. A single process is rank 0 of 1 and takes no collective.
  std::shared_ptr<Communicator> world;
  bool parallel, root;
  data::DatasetInfo dataset;
  data::Shard train_shard, valid_shard;
  ModelConfig model_config;
  Transformer model;
  Trainer trainer;
  int64_t steps, seq_len, batch, micro;
  uint64_t data_seed;
  BatchSampler sampler;

  RunSetup(const Config& c, std::shared_ptr<Communicator> w)
      : cfg(c),
        world(std::move(w)),
        parallel(world->size() > 1),
        root(world->rank() == 0),
        dataset(data::load_dataset(c.string("data.dir"))),
        train_shard(data::open_dataset_shard(dataset, "train")),
        valid_shard(data::open_dataset_shard(dataset, "valid")),
        model_config(c.model_config(dataset.vocab_size)),
        model(model_config),
        trainer(model, adamw_options(c), lr_schedule(c), clip_norm(c), c.real("moe.l1_coeff_init"),
                c.real("moe.l1_coeff_multiplier")),
        steps(c.integer("train.steps")),
        seq_len(c.integer("model.seq_len")),
        batch(c.integer("train.batch_size")),
        micro(c.integer("train.micro_batches")),
        data_seed(static_cast<uint64_t>(c.integer("run.seed"))),
        sampler(train_shard, batch, seq_len, data_seed) {}
};

// The run directory's files: the status lines (stdout unless quiet, and train.log), metrics rows.
// On the ranks other than 0 of a multi-process run (writer = false) log and metrics_row do nothing.
class RunFiles {
 public:
  RunFiles(fs::path dir, bool quiet, bool writer = true) : dir_(std::move(dir)), quiet_(quiet), writer_(writer) {}
  bool writer() const { return writer_; }
  const fs::path& dir() const { return dir_; }
  fs::path ckpt_root() const { return dir_ / "ckpt"; }
  fs::path file(const char* name) const { return dir_ / name; }
  void log(const std::string& line) const {
    if (!writer_) return;
    if (!quiet_) std::cout << line << std::endl;
    append_line(dir_ / "train.log", line);
  }
  void metrics_row(const ordered_json& row) const {
    if (writer_) append_line(dir_ / "metrics.jsonl", row.dump());
  }

 private:
  fs::path dir_;
  bool quiet_, writer_;
};

fs::path checkpoint_dir(const RunFiles& files, int64_t step) { return files.ckpt_root() / ("step_" + std::to_string(step)); }

// Writes a checkpoint of the current state, then deletes all but the newest ckpt.keep verified ones.
fs::path save_and_prune_here(RunSetup& s, const RunFiles& files, int64_t step_done) {
  TrainState state{step_done, s.trainer.controller().state(), s.data_seed, {{"threads", info_threads()}}};
  if (s.parallel) state.extra["world_size"] = s.world->size();
  const fs::path dir = save_checkpoint(files.ckpt_root(), s.model, s.trainer.optimizer(), state);
  if (auto problem = verify_checkpoint(dir))
    fail("run: the checkpoint just written, ", dir.string(), ", does not verify (", *problem,
         "); the older checkpoints are kept");
  prune_checkpoints(files.ckpt_root(), s.cfg.integer("ckpt.keep"));
  return dir;
}

// The same on every rank: rank 0 writes the checkpoint (the replicas hold the same state), and
// no rank goes on before it is complete on disk.
fs::path save_and_prune(RunSetup& s, const RunFiles& files, int64_t step_done) {
  s.trainer.gather_experts();  // expert parallel: rank 0 gets every expert (collective; else nothing)
  const fs::path dir = s.root ? save_and_prune_here(s, files, step_done) : checkpoint_dir(files, step_done);
  if (s.parallel) s.world->barrier();
  return dir;
}

// Broadcasts rank 0's `text` to every rank.
void broadcast_string(Communicator& world, std::string& text) {
  int64_t n = static_cast<int64_t>(text.size());
  world.broadcast(&n, sizeof n, 0);
  text.resize(static_cast<size_t>(n));
  if (n > 0) world.broadcast(text.data(), n, 0);
}

// Runs `work` on rank 0 only (the other ranks wait for its outcome) and returns its error
// message, the same on every rank ("" = it succeeded). Exceptions other than `E` propagate.
template <class E, class F>
std::string on_root_agreed(RunSetup& s, F&& work) {
  std::string error;
  if (s.root) {
    try {
      work();
    } catch (const E& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    }
  }
  if (s.parallel) broadcast_string(*s.world, error);
  return error;
}

// Held-out loss and bits-per-byte per domain: one metrics row and one status line.
ordered_json evaluate_heldout(RunSetup& s, const RunFiles& files, int64_t step_done) {
  const auto t0 = Clock::now();
  s.valid_shard.check_unchanged();
  eval::HeldoutOptions ho;
  ho.seq_len = s.seq_len;
  ho.batch_size = s.batch;
  ho.max_tokens_per_domain = s.cfg.integer("eval.max_tokens");
  eval::HeldoutResult r = eval::heldout_eval(s.model, s.valid_shard, s.dataset.domains, ho);
  ordered_json row = {{"kind", "eval"}, {"step", step_done}, {"valid_loss", r.overall.loss}, {"valid_bpb", r.overall.bpb}};
  for (const eval::DomainLoss& d : r.domains)
    row["domains"][d.domain] = {{"loss", d.loss}, {"bpb", d.bpb}, {"tokens", d.tokens}};
  files.metrics_row(row);
  files.log(fmt::format("eval step {} | valid loss {:.4f} | bpb {:.4f} | {:.1f}s", step_done, r.overall.loss,
                        r.overall.bpb, std::chrono::duration<double>(Clock::now() - t0).count()));
  return row;
}

// ---------------------------------------------------------------------------------------------
// Preparing the run directory: a new run, or a resume that continues the same run or refuses.

// Where a run starts, and what its config.toml / run.json should record about this start.
struct StartPoint {
  int64_t step = 0;
  bool resumed = false;
  std::string checkpoint;                         // "" for step 0
  ordered_json changed = ordered_json::object();  // key -> {"from", "to"} accepted by --resume-changing
  std::optional<RunResult> already_finished;      // set: nothing to do
};

// Keys that change the model or the data: a resume never accepts another value. run.name and
// run.dir locate the run and system.* are where it runs, so they are not compared.
bool changes_model_or_data(const std::string& key) {
  for (const char* prefix : {"model.", "moe."})
    if (key.rfind(prefix, 0) == 0) return true;
  return key == "run.seed" || key == "data.dir" || key == "train.batch_size" || key == "train.micro_batches";
}
bool not_compared(const std::string& key) {
  return key == "run.name" || key == "run.dir" || key.rfind("system.", 0) == 0;
}

// data.dir as an absolute, normalised path (runs from before it was stored resolved hold it
// relative to the working directory they were started from).
std::string resolved_dir(const std::string& dir) { return fs::absolute(dir).lexically_normal().string(); }

// Compares the run's recorded config with this one; returns the accepted changes, or throws
// listing every refused key with both values.
ordered_json check_resume_config(const fs::path& recorded_file, const Config& now, const RunOptions& options) {
  Config recorded;
  recorded.apply_file(recorded_file);
  recorded.finalize();
  for (const std::string& key : options.resume_changing) {
    const auto& schema = config_schema();
    REMOE_CHECK(std::any_of(schema.begin(), schema.end(), [&](const KeySpec& k) { return k.key == key; }),
                "--resume-changing ", key, ": unknown config key (see `remoe train --help-config`)");
    REMOE_CHECK(!changes_model_or_data(key), "--resume-changing ", key, ": ", key,
                " changes the model or the data, so a resume cannot change it (start a new run)");
  }
  const ordered_json a = recorded.to_json(), b = now.to_json();
  ordered_json changed = ordered_json::object();
  std::string fixed, unaccepted;
  for (const KeySpec& spec : config_schema()) {
    const std::string& key = spec.key;
    const std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    ordered_json was = a[section][name], is = b[section][name];
    if (key == "data.dir") {
      was = resolved_dir(was.get<std::string>());
      is = resolved_dir(is.get<std::string>());
    }
    if (not_compared(key) || was == is) continue;
    const std::string line = fmt::format("\n  {}: the run has {}, this command {}", key, was.dump(), is.dump());
    if (changes_model_or_data(key)) {
      fixed += line;
    } else if (std::find(options.resume_changing.begin(), options.resume_changing.end(), key) ==
               options.resume_changing.end()) {
      unaccepted += line;
    } else {
      changed[key] = {{"from", was}, {"to", is}};
    }
  }
  REMOE_CHECK(fixed.empty(), "--resume: this config changes the model or the data of the run in ",
              recorded_file.string(), ":", fixed, unaccepted,
              "\n(resume with the run's values, or start a new run with another --run.name)");
  REMOE_CHECK(unaccepted.empty(), "--resume: this config differs from the run's ", recorded_file.string(), ":",
              unaccepted, "\n(resume with the run's values, or accept the change with --resume-changing KEY...)");
  return changed;
}

// Drops the metrics rows of steps after `step`: a killed attempt logged them, the resume redoes them.
void trim_metrics(const RunFiles& files, int64_t step) {
  const fs::path path = files.file("metrics.jsonl");
  if (!fs::exists(path)) return;
  std::string kept;
  for (const ordered_json& row : read_metrics(path))
    if (row.value("step", int64_t{0}) <= step) kept += row.dump() + "\n";
  write_text_atomically(path, kept);
}

bool summary_says_finished(const RunFiles& files) {
  if (!fs::exists(files.file("summary.json"))) return false;
  try {
    return read_json_file(files.file("summary.json")).value("end", "") == "finished";
  } catch (const Error&) {
    return false;
  }
}

// Loads the checkpoint into the model/optimizer/controller after checking it belongs to this run.
void load_resume_checkpoint(RunSetup& s, const fs::path& dir) {
  TrainState state = load_checkpoint(dir, s.model, &s.trainer.optimizer());
  REMOE_CHECK(state.data_seed == s.data_seed, "--resume: the checkpoint's data seed ", state.data_seed,
              " differs from run.seed = ", s.data_seed);
  // CPU reductions are split per thread: the same bytes need the same thread count.
  const int64_t threads_now = info_threads();
  if (s.cfg.boolean("train.deterministic") && state.extra.contains("threads"))
    REMOE_CHECK(state.extra["threads"].get<int64_t>() == threads_now, "--resume: the checkpoint was written with ",
                state.extra["threads"].get<int64_t>(), " thread(s), this process has ", threads_now,
                "; set --system.threads=", state.extra["threads"].get<int64_t>(),
                " (train.deterministic = true needs the same count to stay bit-identical)");
  // The replicas' gradients are averaged in another order on another number of ranks.
  const int64_t world_was = state.extra.contains("world_size") ? state.extra["world_size"].get<int64_t>() : 1;
  if (s.cfg.boolean("train.deterministic"))
    REMOE_CHECK(world_was == s.world->size(), "--resume: the checkpoint was written by ", world_was,
                " process(es), this run has ", s.world->size(), "; resume with mpirun -np ", world_was,
                ", or set --train.deterministic=false (the same count is needed to stay bit-identical)");
  s.trainer.controller().load_state(state.controller);
  s.trainer.set_steps_taken(state.step);
}

StartPoint resume_run(RunSetup& s, const RunFiles& files, const RunOptions& options) {
  StartPoint start;
  start.resumed = true;
  const fs::path recorded = files.file("config.toml");
  if (!fs::exists(recorded)) {
    files.log(fmt::format("--resume: {} holds no run yet (no config.toml): starting a new run", files.dir().string()));
    start.resumed = false;
    return start;
  }
  start.changed = check_resume_config(recorded, s.cfg, options);
  for (const std::string& action : recover_checkpoints(files.ckpt_root())) files.log("checkpoints: " + action);
  Config recorded_cfg;
  recorded_cfg.apply_file(recorded);
  const CheckpointChoice choice = choose_checkpoint(files.ckpt_root(), recorded_cfg.integer("train.steps"));
  if (!choice.fallback_note().empty()) files.log("--resume: " + choice.fallback_note());
  if (!choice.chosen) {
    files.log(fmt::format("--resume: no complete checkpoint under {}: starting over from step 0",
                          files.ckpt_root().string()));
    trim_metrics(files, 0);
    return start;
  }
  const int64_t ckpt_step = std::stoll(choice.chosen->filename().string().substr(5));
  REMOE_CHECK(ckpt_step <= s.steps, "--resume: the newest checkpoint, ", choice.chosen->string(), ", is at step ",
              ckpt_step, ", beyond train.steps = ", s.steps, "; a resume cannot go back (train.steps must be >= ",
              ckpt_step, ")");
  if (ckpt_step == s.steps && summary_says_finished(files)) {
    start.already_finished = RunResult{RunEnd::Finished, files.dir(), s.steps,
                                       fmt::format("run {} already finished all {} steps ({}); nothing to do",
                                                   files.dir().string(), s.steps, files.file("summary.json").string())};
    return start;
  }
  load_resume_checkpoint(s, *choice.chosen);
  start.step = ckpt_step;
  start.checkpoint = choice.chosen->string();
  trim_metrics(files, ckpt_step);
  files.log(fmt::format("resumed from {} (step {}){}", start.checkpoint, ckpt_step,
                        ckpt_step == s.steps ? ": training is complete, running the final evaluation again" : ""));
  return start;
}

// Everything in the run directory but the lock file (which this process holds).
void clear_run_dir(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename() != RunDirLock::kFileName) fs::remove_all(entry.path());
}

StartPoint prepare_run_dir(RunSetup& s, const RunFiles& files, const RunOptions& options) {
  if (options.resume) return resume_run(s, files, options);
  REMOE_CHECK(!fs::exists(files.file("metrics.jsonl")), "run directory ", files.dir().string(),
              " already holds a run: continue it with --resume, start it over with --fresh, or choose another "
              "--run.name");
  return {};
}

// config.toml: the resolved config, preceded by one comment line per resume (what changed);
// run.json: where the run started, plus one entry per resume under "resumes".
void record_run_start(RunSetup& s, const RunFiles& files, const RunOptions& options, const StartPoint& start,
                      double gemm_gflops) {
  const std::string device = resolve_device(s.cfg.string("system.device"));
  std::string history;
  if (start.resumed) {
    std::ifstream in(files.file("config.toml"));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("# resumed", 0) == 0) history += line + "\n";
    std::string changes;
    for (const auto& [key, c] : start.changed.items())
      changes += fmt::format(" {} {} -> {};", key, c["from"].dump(), c["to"].dump());
    history += fmt::format("# resumed {} at step {}{}\n", now_text(), start.step,
                           changes.empty() ? "" : ", changing" + changes);
  }
  write_text_atomically(files.file("config.toml"), history + s.cfg.to_toml());

  ordered_json info = describe_run(options.argv, device, s.cfg);
  info["parameters"] = s.model.num_parameters();
  info["gemm_peak_gflops"] = gemm_gflops;
  if (s.parallel) info["world_size"] = s.world->size();  // absent: one process
  if (start.resumed && fs::exists(files.file("run.json"))) {
    ordered_json first = read_json_file(files.file("run.json"));
    ordered_json resume = {{"started", info["started"]}, {"argv", info["argv"]}, {"git", info["git"]},
                           {"threads", info["threads"]}, {"from_step", start.step}, {"checkpoint", start.checkpoint},
                           {"changed", start.changed}, {"gemm_peak_gflops", gemm_gflops}};
    if (s.parallel) resume["world_size"] = s.world->size();
    if (!first.contains("resumes")) first["resumes"] = ordered_json::array();
    first["resumes"].push_back(resume);
    write_json(files.file("run.json"), first);
    return;
  }
  info["dataset"] = {{"dir", s.dataset.dir.string()},         {"vocab_size", s.dataset.vocab_size},
                     {"domains", s.dataset.domains},           {"train_tokens", s.train_shard.n_tokens()},
                     {"valid_tokens", s.valid_shard.n_tokens()}};
  write_json(files.file("run.json"), info);
}

// ---------------------------------------------------------------------------------------------
// The loop.

// Sums over the steps since the last status line.
struct StatsWindow {
  double loss_sum = 0, reg_sum = 0, sparsity_sum = 0, gnorm_sum = 0;
  int64_t window = 0;
  void add(const StepMetrics& m) {
    loss_sum += m.lm_loss;
    reg_sum += m.router_loss;
    sparsity_sum += m.sparsity;
    gnorm_sum += m.grad_norm;
    ++window;
  }
};

// One metrics row and one status line for the steps of `w`, the last of which is `done`.
void log_status(const RunSetup& s, const RunFiles& files, const StatsWindow& w, const StepMetrics& m,
                const std::vector<double>& step_ms, int64_t done, int64_t tokens_done, double gemm_gflops) {
  const ModelConfig& model_config = s.model_config;
  const int64_t steps = s.steps;
  const double med_ms = median(std::vector<double>(
      step_ms.end() - std::min<ptrdiff_t>(static_cast<ptrdiff_t>(w.window), static_cast<ptrdiff_t>(step_ms.size())),
      step_ms.end()));
  const double tok_s = static_cast<double>(m.tokens) / (med_ms / 1000.0);
  const double active = active_experts_per_token(model_config, w.sparsity_sum / static_cast<double>(w.window));
  const double mfu = training_flops_per_token(model_config, s.seq_len, active) * tok_s / (gemm_gflops * 1e9);
  const double eta_s = med_ms / 1000.0 * static_cast<double>(steps - done);
  const double n = static_cast<double>(w.window);
  const double reg_sum = w.reg_sum, sparsity_sum = w.sparsity_sum;
  ordered_json row = {{"kind", "train"},  {"step", done},           {"loss", w.loss_sum / n},
                      {"lm_loss", m.lm_loss}, {"aux_or_reg", reg_sum / n}, {"sparsity", sparsity_sum / n},
                      {"lambda", m.lambda},    {"lr", m.lr},            {"grad_norm", w.gnorm_sum / n},
                      {"ms_per_step", med_ms}, {"tokens_per_s", tok_s}, {"mfu", mfu},
                      {"active_experts_per_token", active}, {"tokens", tokens_done}};
  if (s.model.is_moe()) row["layers"] = layer_stats(m, model_config.experts());
  files.metrics_row(row);
  const Transformer& model = s.model;
  const std::string moe_part = router_status(model.router(), reg_sum / n, sparsity_sum / n, m.lambda);
  files.log(fmt::format("step {:>6}/{} | loss {:.4f}{} | lr {:.2e} | gnorm {:.3f} | {:.0f} ms/step | {:.0f} tok/s | "
                        "MFU {:.1f}% | ETA {}",
                        done, steps, w.loss_sum / n, moe_part, m.lr, w.gnorm_sum / n, med_ms, tok_s, 100 * mfu,
                        duration_text(eta_s)));
}

// Fault injection for tests (multi-process ones, where RunOptions::before_step cannot reach):
// REMOE_TRAIN_FAULT=<kind>:<rank>:<step> makes rank <rank>, as step <step> begins, send itself
// SIGINT (kind "sigint": a signal from outside to that one process) or fill its lm_head with NaN
// (kind "nan": a replica gone bad).
struct InjectedFault {
  std::string kind;
  int64_t step = -1;
};
std::optional<InjectedFault> injected_fault(int rank) {
  const char* v = std::getenv("REMOE_TRAIN_FAULT");
  if (v == nullptr) return std::nullopt;
  char kind[16] = {};
  int r = -1;
  long long step = -1;
  REMOE_CHECK(std::sscanf(v, "%15[a-z]:%d:%lld", kind, &r, &step) == 3 &&
                  (std::string(kind) == "sigint" || std::string(kind) == "nan"),
              "REMOE_TRAIN_FAULT=", v, ": expected sigint|nan:<rank>:<step>");
  if (r != rank) return std::nullopt;
  return InjectedFault{kind, static_cast<int64_t>(step)};
}
void inject_fault(const InjectedFault& fault, Transformer& model) {
  if (fault.kind == "sigint") {
    std::raise(SIGINT);
  } else {
    NoGradGuard no_grad;
    const Tensor w = model.parameter("lm_head");
    copy_(w, full(w.shape(), std::nan("")));
  }
}

struct LoopEnd {
  RunEnd end = RunEnd::Finished;
  std::string message;
  int64_t start_step = 0, steps_done = 0;
};

// Steps [start_step, steps): stops early for a signal (checkpoint first), a non-finite step (the
// weights are unchanged and no checkpoint is written), or a data / evaluation error (checkpoint
// of the steps done first). With several ranks every decision is the same on all of them: the stop
// flag and data errors are all-reduced once per step, an evaluation's outcome is rank 0's, and a
// failed step throws on every rank alike (Trainer::step).
LoopEnd train_loop(RunSetup& s, const RunFiles& files, const RunOptions& options, int64_t start_step,
                   double gemm_gflops) {
  StopSignalScope signals;
  LoopEnd out;
  out.start_step = out.steps_done = start_step;
  std::vector<double> step_ms;
  StatsWindow w;
  int64_t tokens_done = 0;
  StepMetrics m;
  auto stop_with_checkpoint = [&](RunEnd end, int64_t step, const std::string& why) {
    const fs::path dir = save_and_prune(s, files, step);
    out.end = end;
    out.message = why + "; checkpoint " + dir.string();
  };
  const std::optional<InjectedFault> fault = injected_fault(s.world->rank());
  for (int64_t step = start_step; step < s.steps; ++step) {
    if (fault && fault->step == step) inject_fault(*fault, s.model);
    bool stop = stop_requested().load();
    if (s.parallel) stop = s.world->all_reduce(int64_t{stop}, ReduceOp::max) != 0;  // a signal to any rank
    if (stop) {
      stop_with_checkpoint(RunEnd::Interrupted, step, "interrupted by a signal at step " + std::to_string(step));
      break;
    }
    if (options.before_step) options.before_step(step, s.model);
    std::vector<Batch> batches;
    std::string data_error;
    try {
      batches = s.sampler.step_batches(step, s.micro);
    } catch (const Error& e) {
      data_error = e.what();
      if (data_error.empty()) data_error = "unknown data error";
    }
    if (s.parallel && s.world->all_reduce(int64_t{!data_error.empty()}, ReduceOp::max) != 0 && data_error.empty())
      data_error = "the training data could not be read on another rank (its error is on its stderr)";
    if (!data_error.empty()) {
      if (!s.root) std::cerr << "remoe: rank " << s.world->rank() << ": " << data_error << "\n";
      files.metrics_row({{"kind", "error"}, {"step", step}, {"message", data_error}});
      stop_with_checkpoint(RunEnd::Failed, step, "training stopped at step " + std::to_string(step) + ": " + data_error);
      break;
    }
    const auto t0 = Clock::now();
    try {
      m = s.trainer.step(batches);
    } catch (const Error& e) {
      out.end = RunEnd::Failed;
      out.message = std::string("training stopped at step ") + std::to_string(step) + ": " + e.what() +
                    " (weights unchanged; the last good checkpoint is kept)";
      files.metrics_row({{"kind", "error"}, {"step", step}, {"message", e.what()}});
      break;
    }
    step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    tokens_done += m.tokens;
    w.add(m);
    const int64_t done = step + 1;
    out.steps_done = done;
    if (done % s.cfg.integer("log.interval") == 0 || done == s.steps) {
      log_status(s, files, w, m, step_ms, done, tokens_done, gemm_gflops);
      w = StatsWindow{};
    }
    const int64_t eval_every = s.cfg.integer("eval.interval"), ckpt_every = s.cfg.integer("ckpt.interval");
    if (eval_every > 0 && done % eval_every == 0 && done < s.steps) {
      // On rank 0 only, with every expert (expert parallel); the other ranks wait for its outcome.
      s.trainer.gather_experts();
      const std::string eval_error = on_root_agreed<Error>(s, [&] { evaluate_heldout(s, files, done); });
      if (!eval_error.empty()) {
        stop_with_checkpoint(RunEnd::Failed, done, "evaluation at step " + std::to_string(done) + " failed: " + eval_error);
        break;
      }
    }
    if (ckpt_every > 0 && done % ckpt_every == 0 && done < s.steps) save_and_prune(s, files, done);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The end: the final checkpoint, then the final evaluation, then summary.json.

// summary.json, from metrics.jsonl (the source of truth: it also covers steps of earlier attempts).
ordered_json summary_json(const RunSetup& s, const RunFiles& files, const RunResult& result, double wall_seconds,
                          const std::string& eval_error) {
  std::vector<double> ms;
  ordered_json last_train = ordered_json::object(), last_eval = ordered_json();
  for (const ordered_json& row : read_metrics(files.file("metrics.jsonl"))) {
    if (row.value("kind", "") == "train") {
      last_train = row;
      ms.push_back(row.value("ms_per_step", 0.0));
    }
    if (row.value("kind", "") == "eval") last_eval = row;
  }
  const double median_ms = ms.empty() ? 0.0 : median(ms);
  ordered_json summary = {{"end", result.end == RunEnd::Finished ? "finished"
                                  : result.end == RunEnd::Interrupted ? "interrupted" : "failed"},
                          {"message", result.message},
                          {"steps", result.steps_done},
                          {"router", s.model_config.ffn},
                          {"parameters", s.model.num_parameters()},
                          {"wall_seconds", wall_seconds},
                          {"median_ms_per_step", median_ms},
                          {"tokens_per_s", ms.empty() ? 0.0 : static_cast<double>(s.batch * s.micro * s.seq_len) / (median_ms / 1000.0)},
                          {"final_train_loss", last_train.value("lm_loss", 0.0)},
                          {"final_sparsity", last_train.value("sparsity", 0.0)},
                          {"final_lambda", last_train.value("lambda", 0.0)},
                          {"last_eval", last_eval}};
  if (!eval_error.empty()) summary["eval_error"] = eval_error;
  return summary;
}

RunResult finish_run(RunSetup& s, const RunFiles& files, const LoopEnd& loop, Clock::time_point run_start) {
  RunResult result{loop.end, files.dir(), loop.steps_done, loop.message};
  std::string eval_error;
  if (loop.end == RunEnd::Finished) {
    result.steps_done = s.steps;
    // The trained steps are safe on disk before the evaluation, which may fail. A resume that
    // only repeats the final evaluation keeps the final checkpoint it loaded.
    const fs::path final_ckpt = checkpoint_dir(files, s.steps);
    fs::path ckpt = final_ckpt;
    s.trainer.gather_experts();  // expert parallel: the whole model for the checkpoint and the evaluation
    if (s.root) {
      const bool have_final = loop.start_step == s.steps && !verify_checkpoint(final_ckpt);
      if (!have_final) ckpt = save_and_prune_here(s, files, s.steps);
    }
    // Any failure: the trained steps are on disk already. (Rank 0 evaluates, the others wait.)
    eval_error = on_root_agreed<std::exception>(s, [&] { evaluate_heldout(s, files, s.steps); });
    if (!eval_error.empty()) {
      result.end = RunEnd::Failed;
      result.message = fmt::format("trained all {} steps (checkpoint {}), but the final evaluation failed: {} "
                                   "(--resume runs the evaluation again)",
                                   s.steps, ckpt.string(), eval_error);
    }
  }
  if (s.root) {
    // The caller prints why the run stopped; the log file keeps it too.
    if (result.end != RunEnd::Finished) append_line(files.file("train.log"), result.message);
    const double wall = std::chrono::duration<double>(Clock::now() - run_start).count();
    write_json(files.file("summary.json"), summary_json(s, files, result, wall, eval_error));
  }
  if (s.parallel) s.world->barrier();  // every rank returns once the run directory is complete
  return result;
}

// Finalises the config (preset, checks), applies system.threads, and stores data.dir resolved so
// that the run can be evaluated or resumed from any working directory.
void prepare_config(Config& cfg) {
  cfg.finalize();
  cfg.set("data.dir", resolved_dir(cfg.string("data.dir")));
  if (cfg.integer("system.threads") > 0) {
#ifdef _OPENMP
    omp_set_num_threads(static_cast<int>(cfg.integer("system.threads")));
#endif
  }
  apply_matmul_precision(cfg.string("train.precision"));
  resolve_device(cfg.string("system.device"));  // an unusable device is an error before anything is written
}

// Several processes (mpirun -np N): each micro-batch of train.batch_size sequences is split into
// N equal shares (rank_share), so the global batch is the configured one; with
// dist.expert_parallel = P the experts of each layer are split over groups of P ranks.
void check_parallel_config(const Config& cfg, int world_size) {
  const int64_t P = cfg.integer("dist.expert_parallel");
  if (P > 1) {
    const RouterSpec& router = router_spec(cfg.string("moe.router"));
    REMOE_CHECK(router.expert_parallel, "dist.expert_parallel = ", P, ": moe.router = ", router.name,
                " has no experts to split over processes (expert parallelism needs a token-dispatching MoE router)");
    const int64_t experts = cfg.integer("moe.num_experts") * cfg.integer("moe.granularity");
    REMOE_CHECK(world_size % P == 0 && experts % P == 0, "dist.expert_parallel = ", P, " must divide the ",
                world_size, " processes of this run (mpirun -np) and the ", experts,
                " experts of a layer (moe.num_experts × moe.granularity)");
  }
  if (world_size == 1) return;
  const int64_t batch = cfg.integer("train.batch_size");
  REMOE_CHECK(batch % world_size == 0, "train.batch_size = ", batch,
              " (sequences per micro-batch, the global batch over every rank) is not a multiple of the ", world_size,
              " processes of this run (mpirun -np ", world_size, "): each rank trains an equal share of every "
              "micro-batch; choose a train.batch_size divisible by ", world_size);
}

// Rank 0 decided where the run starts (prepare_run_dir, after recover_checkpoints): the other
// ranks learn it and load the same checkpoint (complete on disk: rank 0 chose it after recovery).
void share_start_point(RunSetup& s, const RunFiles& files, StartPoint& start) {
  int64_t header[3] = {start.step, start.resumed, start.already_finished.has_value()};
  s.world->broadcast(header, sizeof header, 0);
  std::string finished_message = start.already_finished ? start.already_finished->message : "";
  broadcast_string(*s.world, start.checkpoint);
  broadcast_string(*s.world, finished_message);
  if (s.root) return;
  start.step = header[0];
  start.resumed = header[1] != 0;
  if (header[2] != 0) {
    start.already_finished = RunResult{RunEnd::Finished, files.dir(), s.steps, finished_message};
    return;
  }
  if (!start.checkpoint.empty()) load_resume_checkpoint(s, start.checkpoint);
}

}  // namespace

RunResult run_training(RunOptions options) {
  Config& cfg = options.config;
  prepare_config(cfg);
  REMOE_CHECK(!(options.resume && options.fresh), "--resume and --fresh exclude each other");
  std::shared_ptr<Communicator> world = world_communicator();
  check_parallel_config(cfg, world->size());
  const bool root = world->rank() == 0;
  const RunFiles files(fs::path(cfg.string("run.dir")) / cfg.string("run.name"), options.quiet, root);
  std::optional<RunDirLock> lock;  // rank 0 alone creates, locks and writes the run directory
  if (root) lock.emplace(RunDirLock::acquire(files.dir(), "remoe train"));
  RunSetup setup(cfg, world);  // the data and the model: bad data is an error before the run dir is touched
  StartPoint start;
  if (root) {
    if (options.fresh) clear_run_dir(files.dir());
    start = prepare_run_dir(setup, files, options);
  }
  if (setup.parallel) share_start_point(setup, files, start);
  if (start.already_finished) return *start.already_finished;  // nothing written: the caller says so
  // Every replica starts from rank 0's parameters (the same bytes on a resume: the same checkpoint).
  if (setup.parallel) setup.trainer.set_data_parallel(world);
  if (cfg.integer("dist.expert_parallel") > 1) setup.trainer.set_expert_parallel(cfg.integer("dist.expert_parallel"));
  double gemm_gflops = 0;
  if (root) {
    gemm_gflops = measure_gemm_peak(1024, 3).median_gflops;
    record_run_start(setup, files, options, start, gemm_gflops);
  }
  const int64_t expert_parallel = cfg.integer("dist.expert_parallel");
  const std::string processes =
      !setup.parallel ? ""
      : expert_parallel > 1 ? fmt::format(" x {} processes (experts over {})", world->size(), expert_parallel)
                            : fmt::format(" x {} processes", world->size());
  files.log(fmt::format("run {} | {} | {} params | {} on {} thread(s){} | GEMM peak {:.1f} GFLOP/s",
                        files.dir().string(), setup.model_config.ffn, setup.model.num_parameters(),
                        resolve_device(cfg.string("system.device")), info_threads(), processes, gemm_gflops));
  const auto run_start = Clock::now();
  const LoopEnd loop = train_loop(setup, files, options, start.step, gemm_gflops);
  return finish_run(setup, files, loop, run_start);
}

}  // namespace remoe::experiments
