// `remoe demo`: the README's first command. Builds the demo corpus if absent, trains tiny models
// with each router of --routers (default dense, TopK, ReMoE) on the same data order and seed,
// evaluates them, and prints one table.
#include <chrono>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "experiments/cli/commands.h"
#include "experiments/data/build_dataset.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run.h"
#include "experiments/train/run_eval.h"
#include "models/router_registry.h"

namespace remoe::cli {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

struct DemoArgs {
  std::string data = "data/demo", runs = "runs/demo";
  std::vector<std::string> routers = {"dense", "topk", "relu"};
  int64_t steps = 300, zero_shot_limit = 100, experts = 8, topk = 1;
  int vocab = 4096;
  bool fresh = false;
};

ordered_json read_json_file(const fs::path& p) {
  std::ifstream in(p);
  return ordered_json::parse(in);
}

void ensure_dataset(const DemoArgs& a) {
  if (fs::exists(fs::path(a.data) / "dataset.json")) return;
  data::BuildOptions b;
  b.preset = "demo";
  b.out = a.data;
  b.vocab_size = a.vocab;
  b.tokenizer_sample_mb = 10;
  data::build_dataset(b);
}

// The demo's run configuration: tiny preset, 8 × 128 tokens a step, evaluation at the end only.
experiments::Config demo_config(const DemoArgs& a, const std::string& router) {
  experiments::Config c;
  c.set("data.dir", a.data);
  c.set("run.dir", a.runs);
  c.set("run.name", router);
  c.set("moe.router", router);
  c.set("model.preset", "tiny");
  c.set("model.seq_len", int64_t{128});
  c.set("moe.num_experts", a.experts);
  c.set("moe.topk", a.topk);
  c.set("train.steps", a.steps);
  c.set("train.batch_size", int64_t{8});
  c.set("train.lr", 1e-3);
  c.set("train.min_lr", 1e-4);
  c.set("log.interval", std::max<int64_t>(1, a.steps / 20));
  c.set("eval.interval", int64_t{0});
  c.set("ckpt.interval", int64_t{0});
  c.set("eval.max_tokens", int64_t{8192});
  return c;
}

// Trains one router's run unless it already finished; an interrupted run continues from its
// checkpoint, --fresh starts over. Returns 0, or the exit code of a run that did not finish.
int train_demo_run(const DemoArgs& a, const std::string& router, const std::vector<std::string>& argv) {
  const fs::path run_dir = fs::path(a.runs) / router;
  const bool done =
      fs::exists(run_dir / "summary.json") && read_json_file(run_dir / "summary.json").value("end", "") == "finished";
  if (done && !a.fresh) {
    std::cout << fmt::format("\n== {} already trained: {} ==\n", router, run_dir.string());
    return 0;
  }
  const bool resume = !a.fresh && experiments::latest_checkpoint(run_dir / "ckpt").has_value();
  if (!resume && fs::exists(run_dir)) fs::remove_all(run_dir);
  experiments::RunOptions o;
  o.resume = resume;
  o.argv = argv;
  o.config = demo_config(a, router);
  std::cout << fmt::format("\n== {} {} ({} steps) ==\n", resume ? "resuming" : "training", router, a.steps);
  experiments::RunResult r = experiments::run_training(std::move(o));
  if (r.end == experiments::RunEnd::Finished) return 0;
  std::cerr << "remoe demo: " << r.message << "\n";
  return r.end == experiments::RunEnd::Interrupted ? 130 : 3;
}

// Zero-shot evaluation of a finished run (held-out numbers come from its summary.json).
ordered_json evaluate_demo_run(const DemoArgs& a, const std::string& router) {
  experiments::RunEvalOptions e;
  e.run_dir = fs::path(a.runs) / router;
  e.heldout = false;  // the run evaluated the held-out split at its end (summary.json)
  e.zero_shot = a.zero_shot_limit >= 0;
  e.limit = std::max<int64_t>(0, a.zero_shot_limit);
  ordered_json ev;
  try {
    ev = experiments::evaluate_run(e);
  } catch (const Error& err) {  // e.g. the benchmark files are absent: held-out loss only
    std::cerr << "remoe demo: zero-shot skipped: " << err.what() << "\n";
    e.zero_shot = false;
    ev = experiments::evaluate_run(e);
  }
  return {{"router", router}, {"eval", ev}, {"summary", read_json_file(e.run_dir / "summary.json")}};
}

// The side-by-side markdown table, one column per router.
std::string demo_table(const DemoArgs& a, const std::vector<ordered_json>& rows) {
  std::string table = "|", rule = "|---|";
  for (const ordered_json& r : rows) table += " | " + r["router"].get<std::string>(), rule += "---:|";
  table += " |\n" + rule + "\n";
  auto line = [&](const std::string& name, auto&& cell) {
    table += "| " + name + " |";
    for (const ordered_json& r : rows) table += " " + cell(r) + " |";
    table += "\n";
  };
  auto spec = [](const ordered_json& r) -> const RouterSpec& { return router_spec(r["router"].get<std::string>()); };
  // Held-out numbers: the evaluation each run did at its last step (metrics.jsonl, summary.json).
  auto heldout = [](const ordered_json& r) -> const ordered_json& { return r["summary"]["last_eval"]; };
  for (const auto& [domain, unused] : heldout(rows[0])["domains"].items())
    line("held-out loss: " + domain, [&](const ordered_json& r) {
      return fmt::format("{:.4f}", heldout(r)["domains"][domain]["loss"].get<double>());
    });
  line("**held-out loss: all**", [&](const ordered_json& r) { return fmt::format("**{:.4f}**", heldout(r)["valid_loss"].get<double>()); });
  line("held-out bits/byte: all", [&](const ordered_json& r) { return fmt::format("{:.4f}", heldout(r)["valid_bpb"].get<double>()); });
  line("sparsity (last step)", [&](const ordered_json& r) {
    return spec(r).routes_tokens ? fmt::format("{:.3f}", r["summary"]["final_sparsity"].get<double>()) : std::string("–");
  });
  line("active experts / token", [&](const ordered_json& r) {
    if (!spec(r).routes_tokens) return std::string("–");
    const ModelConfig mc = demo_config(a, r["router"].get<std::string>()).model_config(256);
    return fmt::format("{:.2f}", spec(r).active_experts(mc, r["summary"]["final_sparsity"].get<double>()));
  });
  line("tokens/s (median step)", [](const ordered_json& r) { return fmt::format("{:.0f}", r["summary"]["tokens_per_s"].get<double>()); });
  if (rows[0]["eval"].contains("zero_shot")) {
    for (const auto& [task, first] : rows[0]["eval"]["zero_shot"]["tasks"].items())
      line(fmt::format("{} acc ({} items)", task, first["items"].get<int64_t>()), [&](const ordered_json& r) {
        return fmt::format("{:.3f}", r["eval"]["zero_shot"]["tasks"][task]["acc"].get<double>());
      });
  }
  return table;
}

}  // namespace

Command add_demo_command(CLI::App& app, const std::vector<std::string>& argv) {
  CLI::App* sub = app.add_subcommand("demo", "dense vs TopK vs ReMoE (or any routers) on the demo corpus (minutes on 2 CPU cores)");
  auto a = std::make_shared<DemoArgs>();
  sub->add_option("--data", a->data, "dataset directory (built with the demo preset if absent)")->capture_default_str();
  sub->add_option("--runs", a->runs, "where the run directories go (one per router)")->capture_default_str();
  sub->add_option("--routers", a->routers, "routers to train side by side")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember(router_names()));
  sub->add_option("--steps", a->steps, "optimizer steps per model")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--experts", a->experts, "E")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--topk", a->topk, "k")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--vocab", a->vocab, "tokenizer vocabulary when the dataset is built")->capture_default_str();
  sub->add_option("--zero-shot-limit", a->zero_shot_limit, "items per zero-shot task (0 = all, -1 = skip)")->capture_default_str();
  sub->add_flag("--fresh", a->fresh, "retrain even if the runs exist (their directories are replaced)");
  return [a, argv]() {
    const auto t0 = std::chrono::steady_clock::now();
    ensure_dataset(*a);
    std::vector<ordered_json> rows;
    for (const std::string& router : a->routers) {
      if (int code = train_demo_run(*a, router, argv); code != 0) return code;
      rows.push_back(evaluate_demo_run(*a, router));
    }
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60;
    std::string report = fmt::format(
        "# remoe demo: {}\n\nSame data order and seed; tiny preset (d 128, 4 layers), E = {}, k = {}, {} steps of "
        "8 × 128 tokens. Zero-shot accuracies at this size are expected near chance.\n\n{}\nRun directories: {}/{{{}}}. "
        "Wall time of this command: {:.1f} min.\n",
        fmt::join(a->routers, " vs "), a->experts, a->topk, a->steps, demo_table(*a, rows), a->runs,
        fmt::join(a->routers, ","), minutes);
    std::cout << "\n" << report;
    std::ofstream(fs::path(a->runs) / "report.md") << report;
    return 0;
  };
}

}  // namespace remoe::cli
