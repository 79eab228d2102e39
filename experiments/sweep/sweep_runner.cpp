#include "experiments/sweep/sweep_runner.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "core/random.h"
#include "experiments/data/dataset.h"
#include "experiments/train/throughput.h"
#include "models/train_step.h"
#include "models/router_registry.h"

extern char** environ;

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_sweep_signal(int) { g_stop.store(true); }

// Installs SIGINT/SIGTERM handlers for the sweep's lifetime (the children are told to stop by the
// loop, which then waits for their checkpoints), and restores the previous ones after.
class SweepSignalScope {
 public:
  SweepSignalScope() {
    g_stop.store(false);
    struct sigaction sa {};
    sa.sa_handler = on_sweep_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SweepSignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

std::string clock_text() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

// The newest train row's step and ms_per_step of a run's metrics.jsonl (0, 0 if none yet).
std::pair<int64_t, double> latest_progress(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::string line;
  std::pair<int64_t, double> out{0, 0};
  while (std::getline(in, line)) {
    ordered_json row = ordered_json::parse(line, nullptr, false);
    if (row.is_object() && row.value("kind", "") == "train")
      out = {row.value("step", int64_t{0}), row.value("ms_per_step", 0.0)};
  }
  return out;
}

// Seconds of the held-out evaluations of one run: forward only, ~1/3 of a training token's work.
double eval_seconds(const Config& cfg, int64_t domains, double ms_per_step, int64_t steps) {
  const int64_t interval = cfg.integer("eval.interval");
  const int64_t evals = 1 + (interval > 0 ? (steps - 1) / interval : 0);
  const double tokens_per_step = static_cast<double>(cfg.integer("train.batch_size") *
                                                     cfg.integer("train.micro_batches") * cfg.integer("model.seq_len"));
  const double eval_tokens = static_cast<double>(evals * domains * cfg.integer("eval.max_tokens"));
  return eval_tokens / tokens_per_step * ms_per_step / 3.0 / 1000.0;
}

int64_t threads_per_run(const SweepOptions& o) { return std::max<int64_t>(1, o.cores / std::max<int64_t>(1, o.parallel)); }

// Fills in each entry's ms/step: the run's own measurement when it has one, else one in-process
// step per point label (seeds share it).
void estimate_plan(std::vector<PlanEntry>& plan, const SweepOptions& options) {
  std::map<std::string, double> by_label;
  for (PlanEntry& e : plan)
    if (double ms = latest_progress(e.state.dir).second; ms > 0) by_label.emplace(e.state.run.label, ms);
  std::map<std::string, data::DatasetInfo> datasets;
  for (PlanEntry& e : plan) {
    if (e.state.status == RunStatus::Finished || e.state.status == RunStatus::Failed) continue;
    if (!options.measure && !by_label.count(e.state.run.label)) continue;  // no estimate: needs no dataset
    Config cfg = planned_config(e.state.run);
    cfg.finalize();
    const std::string dir = cfg.string("data.dir");
    if (!datasets.count(dir)) datasets[dir] = data::load_dataset(dir);
    const data::DatasetInfo& ds = datasets[dir];
    if (!by_label.count(e.state.run.label) && options.measure)
      by_label[e.state.run.label] = measure_step_ms(cfg, ds.vocab_size, e.state.threads);
    e.ms_per_step = by_label.count(e.state.run.label) ? by_label[e.state.run.label] : 0.0;
    const int64_t left = e.state.steps_total - e.state.steps_done;
    e.seconds_left = e.ms_per_step * static_cast<double>(left) / 1000.0 +
                     eval_seconds(cfg, static_cast<int64_t>(ds.domains.size()), e.ms_per_step, left);
  }
}

double total_seconds_left(const std::vector<PlanEntry>& plan) {
  double s = 0;
  for (const PlanEntry& e : plan) s += e.seconds_left;
  return s;
}

// Starts `remoe train` for one run: stdout and stderr go to <run>/sweep_stdout.log, the thread
// count to OMP_NUM_THREADS (and system.threads in sweep_point.toml).
pid_t spawn_train(const fs::path& exe, const RunState& state, bool resume) {
  std::vector<std::string> args = {exe.string(), "train", "-c", (state.dir / "sweep_point.toml").string(), "-q"};
  if (resume) args.push_back("--resume");
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env.emplace_back(*e);
  env.push_back("OMP_NUM_THREADS=" + std::to_string(state.threads));
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log = (state.dir / "sweep_stdout.log").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REMOE_CHECK(rc == 0, "sweep: cannot start ", exe.string(), " for ", state.dir.string(), ": ", std::strerror(rc));
  return pid;
}

// The last `n` lines of a file, for reporting a child that failed.
std::string tail_lines(const fs::path& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

struct Child {
  pid_t pid = 0;
  PlanEntry entry;
  Clock::time_point started;
};

class Scheduler {
 public:
  Scheduler(const SweepOptions& o, const SweepSpec& spec, std::vector<PlanEntry> plan, std::ostream& out)
      : o_(o), spec_(spec), plan_(std::move(plan)), out_(out) {}

  SweepOutcome run();

 private:
  void queue_runnable();
  bool start_next(int64_t free_slots);
  void reap_finished();
  void on_exit(Child& c, int wait_status);
  void stop_children();
  void print_progress();
  double seconds_left() const;

  const SweepOptions& o_;
  const SweepSpec& spec_;
  std::vector<PlanEntry> plan_;  // every run; finished ones stay for the counts
  std::ostream& out_;
  std::vector<size_t> queue_;    // indices into plan_, in start order
  std::vector<bool> queued_;
  std::vector<Child> children_;
  SweepOutcome outcome_;
  Clock::time_point start_ = Clock::now(), last_progress_ = Clock::now();
};

void Scheduler::queue_runnable() {
  // Seed-major order: every point gets its first seed before any gets a second, so that the
  // first results to land cover the whole grid.
  std::vector<size_t> fresh;
  queued_.resize(plan_.size(), false);
  for (size_t i = 0; i < plan_.size(); ++i) {
    PlanEntry& e = plan_[i];
    if (e.state.status == RunStatus::Waiting) {
      e.state = inspect_run(e.state.run, e.state.dir.parent_path(), e.state.threads);
      if (e.state.status == RunStatus::Missing) e.seconds_left = e.ms_per_step * static_cast<double>(e.state.steps_total) / 1000.0;
    }
    const bool runnable = e.state.status == RunStatus::Missing || e.state.status == RunStatus::Resumable ||
                          e.state.status == RunStatus::Stale;
    if (runnable && !queued_[i]) fresh.push_back(i);
  }
  std::stable_sort(fresh.begin(), fresh.end(), [&](size_t a, size_t b) {
    const bool ra = plan_[a].state.status == RunStatus::Resumable, rb = plan_[b].state.status == RunStatus::Resumable;
    if (ra != rb) return ra;  // interrupted runs first: their work is half done
    return plan_[a].state.run.seed < plan_[b].state.run.seed;
  });
  for (size_t i : fresh) {
    queue_.push_back(i);
    queued_[i] = true;
  }
}

bool Scheduler::start_next(int64_t free_slots) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    PlanEntry& e = plan_[*it];
    if (e.state.threads > free_slots && !(children_.empty() && e.state.threads > o_.cores)) continue;
    RunState& s = e.state;
    if (s.status == RunStatus::Stale) {
      const fs::path aside = s.dir.string() + fmt::format(".stale-{}", std::time(nullptr));
      fs::rename(s.dir, aside);
      out_ << fmt::format("[{}] {} had no complete checkpoint: moved to {}; starting over\n", clock_text(), s.run.name,
                          aside.string());
      s.status = RunStatus::Missing;
    }
    const bool resume = s.status == RunStatus::Resumable;
    if (!resume) write_sweep_point(s, spec_, o_.scale);
    Child c{spawn_train(o_.exe, s, resume), e, Clock::now()};
    out_ << fmt::format("[{}] start {}{} | {} thread(s) | {}/{} finished\n", clock_text(), s.run.name,
                        resume ? fmt::format(" (resume at step {})", s.steps_done) : "", s.threads, outcome_.finished,
                        outcome_.total)
         << std::flush;
    children_.push_back(std::move(c));
    queue_.erase(it);
    return true;
  }
  return false;
}

void Scheduler::on_exit(Child& c, int wait_status) {
  PlanEntry& e = c.entry;
  const double took = std::chrono::duration<double>(Clock::now() - c.started).count();
  e.state = inspect_run(e.state.run, e.state.dir.parent_path(), e.state.threads);
  for (PlanEntry& p : plan_)
    if (p.state.run.name == e.state.run.name) p = e;
  if (e.state.status == RunStatus::Finished) {
    ++outcome_.finished;
    e.seconds_left = 0;
    for (PlanEntry& p : plan_)
      if (p.state.run.name == e.state.run.name) p.seconds_left = 0;
    const std::optional<double> loss = final_valid_loss(e.state.dir);
    out_ << fmt::format("[{}] done  {} in {} | valid loss {} | {}/{} finished | sweep ETA {}\n", clock_text(),
                        e.state.run.name, duration_text(took), loss ? fmt::format("{:.4f}", *loss) : "?",
                        outcome_.finished, outcome_.total, duration_text(seconds_left()));
    queue_runnable();  // a compute-matched run may have been waiting for this one
    return;
  }
  const int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  if (e.state.status == RunStatus::Failed || code != 130) ++outcome_.failed;
  out_ << fmt::format("[{}] stop  {} after {} (exit {}, {} at step {}){}\n{}", clock_text(), e.state.run.name,
                      duration_text(took), code, status_name(e.state.status), e.state.steps_done,
                      code == 130 ? "" : "; the last lines of sweep_stdout.log:",
                      code == 130 ? "" : tail_lines(e.state.dir / "sweep_stdout.log", 5));
}

void Scheduler::reap_finished() {
  for (size_t i = 0; i < children_.size();) {
    int status = 0;
    if (waitpid(children_[i].pid, &status, WNOHANG) == children_[i].pid) {
      Child c = std::move(children_[i]);
      children_.erase(children_.begin() + static_cast<ptrdiff_t>(i));
      on_exit(c, status);
    } else {
      ++i;
    }
  }
}

// SIGTERM to every child (each checkpoints after its current step), then waits; a child that has
// not exited after 10 minutes is killed, so the sweep never hangs.
void Scheduler::stop_children() {
  for (Child& c : children_) kill(c.pid, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::minutes(10);
  while (!children_.empty()) {
    reap_finished();
    if (Clock::now() > deadline)
      for (Child& c : children_) kill(c.pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

double Scheduler::seconds_left() const {
  double s = 0;
  for (const PlanEntry& e : plan_) {
    bool running = false;
    for (const Child& c : children_) running = running || c.entry.state.run.name == e.state.run.name;
    if (!running) s += e.seconds_left;
  }
  for (const Child& c : children_) {
    const auto [step, ms] = latest_progress(c.entry.state.dir);
    const double rate = ms > 0 ? ms : c.entry.ms_per_step;
    s += rate * static_cast<double>(c.entry.state.steps_total - std::max(step, c.entry.state.steps_done)) / 1000.0;
  }
  return s / static_cast<double>(std::max<int64_t>(1, o_.parallel));
}

void Scheduler::print_progress() {
  for (const Child& c : children_) {
    const auto [step, ms] = latest_progress(c.entry.state.dir);
    const double eta = ms * static_cast<double>(c.entry.state.steps_total - step) / 1000.0;
    out_ << fmt::format("[{}] {} {}/{} steps | {:.0f} ms/step | run ETA {} | {}/{} finished | sweep ETA {}\n",
                        clock_text(), c.entry.state.run.name, step, c.entry.state.steps_total, ms, duration_text(eta),
                        outcome_.finished, outcome_.total, duration_text(seconds_left()));
  }
  out_ << std::flush;
}

SweepOutcome Scheduler::run() {
  SweepSignalScope signals;
  outcome_.total = static_cast<int64_t>(plan_.size());
  for (const PlanEntry& e : plan_) outcome_.finished += e.state.status == RunStatus::Finished;
  queue_runnable();
  while (!queue_.empty() || !children_.empty()) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    if (g_stop.load() || (o_.budget_seconds > 0 && elapsed >= o_.budget_seconds)) {
      out_ << fmt::format("[{}] {}: stopping {} run(s); they checkpoint and resume next time\n", clock_text(),
                          g_stop.load() ? "signal" : "budget reached", children_.size())
           << std::flush;
      outcome_.stopped = true;
      stop_children();
      break;
    }
    int64_t used = 0;
    for (const Child& c : children_) used += c.entry.state.threads;
    if (!start_next(o_.cores - used)) {
      reap_finished();
      if (std::chrono::duration<double>(Clock::now() - last_progress_).count() >= o_.progress_seconds) {
        print_progress();
        last_progress_ = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  for (const PlanEntry& e : plan_) {
    outcome_.waiting += e.state.status == RunStatus::Waiting;
    outcome_.unfinished += e.state.status != RunStatus::Finished;
  }
  return outcome_;
}

}  // namespace

double parse_duration(const std::string& text) {
  REMOE_CHECK(!text.empty(), "sweep: --budget is empty (examples: 3h, 90m, 1h30m, 45s)");
  double total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(text.substr(pos), &used);
    } catch (const std::logic_error&) {
      fail("sweep: --budget '", text, "' is not a duration (examples: 3h, 90m, 1h30m, 45s)");
    }
    pos += used;
    const char unit = pos < text.size() ? text[pos] : 's';
    const double scale = unit == 'h' ? 3600 : unit == 'm' ? 60 : unit == 's' ? 1 : -1;
    REMOE_CHECK(scale > 0 && value >= 0, "sweep: --budget '", text, "' is not a duration (examples: 3h, 90m, 1h30m, 45s)");
    total += value * scale;
    if (pos < text.size()) ++pos;
  }
  return total;
}

bool matches_only(const std::string& name, const std::string& pattern) {
  if (pattern.empty()) return true;
  if (pattern.find_first_of("*?[") == std::string::npos) return name.find(pattern) != std::string::npos;
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

fs::path sweep_runs_dir(const SweepOptions& options, const SweepSpec& spec) {
  return options.runs.empty() ? fs::path("runs") / (spec.name + "-" + options.scale) : options.runs;
}

std::vector<PlanEntry> make_plan(const SweepOptions& options, const SweepSpec& spec) {
  REMOE_CHECK(options.parallel >= 1 && options.parallel <= options.cores, "sweep: --parallel = ", options.parallel,
              " must be in [1, ", options.cores, "]");
  const int64_t seeds = options.seeds > 0 ? options.seeds : spec.seeds;
  const fs::path root = sweep_runs_dir(options, spec);
  std::vector<PlanEntry> plan;
  for (const PlannedRun& run : expand_sweep(spec, options.scale, seeds)) {
    if (!matches_only(run.name, options.only)) continue;
    plan.push_back({inspect_run(run, root, threads_per_run(options)), 0, 0});
  }
  REMOE_CHECK(!plan.empty(), "sweep: --only '", options.only, "' matches no run of ", spec.file.string());
  estimate_plan(plan, options);
  return plan;
}

void print_plan(const std::vector<PlanEntry>& plan, const SweepSpec& spec, const SweepOptions& options, std::ostream& out) {
  out << fmt::format("sweep {} (experiment {}), scale {}: {} runs in {}\n", spec.name, spec.experiment, options.scale,
                     plan.size(), sweep_runs_dir(options, spec).string());
  out << fmt::format("  {:<28} {:<10} {:>13} {:>9} {:>9}\n", "run", "status", "steps", "ms/step", "estimate");
  std::map<RunStatus, int64_t> counts;
  for (const PlanEntry& e : plan) {
    ++counts[e.state.status];
    out << fmt::format("  {:<28} {:<10} {:>13} {:>9} {:>9}{}\n", e.state.run.name, status_name(e.state.status),
                       fmt::format("{}/{}", e.state.steps_done, e.state.steps_total),
                       e.ms_per_step > 0 ? fmt::format("{:.0f}", e.ms_per_step) : "-", duration_text(e.seconds_left),
                       e.state.note.empty() ? "" : "  (" + e.state.note + ")");
  }
  std::string totals;
  for (const auto& [status, n] : counts) totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, status_name(status));
  out << fmt::format("  {}; estimated {} with {} run(s) side by side, {} thread(s) each\n", totals,
                     duration_text(total_seconds_left(plan) / static_cast<double>(options.parallel)), options.parallel,
                     threads_per_run(options))
      << std::flush;
}

SweepOutcome run_sweep(const SweepOptions& options, std::ostream& out) {
  const SweepSpec spec = load_sweep(options.file);
  std::vector<PlanEntry> plan = make_plan(options, spec);
  print_plan(plan, spec, options, out);
  if (options.dry_run) {
    SweepOutcome o;
    o.total = static_cast<int64_t>(plan.size());
    for (const PlanEntry& e : plan) o.finished += e.state.status == RunStatus::Finished;
    o.unfinished = o.total - o.finished;
    return o;
  }
  // The index lists every run of the sweep, also those --only leaves out this time.
  const int64_t seeds = options.seeds > 0 ? options.seeds : spec.seeds;
  write_sweep_index(sweep_runs_dir(options, spec), sweep_index(spec, options.scale, expand_sweep(spec, options.scale, seeds)));
  for (const PlanEntry& e : plan) link_shared_run(e.state);
  Scheduler scheduler(options, spec, std::move(plan), out);
  return scheduler.run();
}

double measure_step_ms(Config config, int64_t vocab_size, int64_t threads) {
  // A router compared with another at equal active compute (ReMoE with TopK) is timed as that one:
  // at its target sparsity it does the same work (its near-dense start is a few steps).
  const std::string& compared_with = router_spec(config.string("moe.router")).compared_with;
  if (!compared_with.empty()) config.set("moe.router", compared_with);
  config.finalize();
#ifdef _OPENMP
  const int old_threads = omp_get_max_threads();
  omp_set_num_threads(static_cast<int>(threads));
#endif
  const ModelConfig mc = config.model_config(vocab_size);
  Transformer model(mc);
  Trainer trainer(model, AdamWOptions{}, LrSchedule{1e-7, 1e-7, 0, 1000}, 1.0);
  Generator gen(1);
  const int64_t batch = config.integer("train.batch_size"), seq = config.integer("model.seq_len");
  std::vector<Batch> batches;
  for (int64_t i = 0; i < config.integer("train.micro_batches"); ++i)
    batches.push_back({randint({batch, seq}, 0, vocab_size, gen), randint({batch, seq}, 0, vocab_size, gen)});
  std::vector<double> ms;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    trainer.step(batches);
    if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
#ifdef _OPENMP
  omp_set_num_threads(old_threads);
#endif
  return median(ms);
}

}  // namespace remoe::experiments
