// `remoe analyze RUNS... --out DIR --analyses stages,domains,allocation,load_balance,stability`: the paper's analyses of
// trained runs (experiments/analyze/, docs/experiments.md "Analyses"). Writes <analysis>.json per
// analysis, analysis.md, and the figures, which experiments/analyze/plot.py draws with matplotlib
// (Debian's /usr/bin/python3). Runs are read as `remoe report` reads them (run directories, sweep
// directories, packs); stages needs only metrics.jsonl, domains, allocation and load_balance the final
// checkpoint, stability every checkpoint.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/cli/commands.h"
#include "experiments/sweep/pack.h"

namespace remoe::cli {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

const std::vector<std::string> kAnalyses = {"stages", "domains", "allocation", "load_balance", "stability"};
// The default: every analysis an ordinary run supports (stability needs a run that kept several checkpoints).
const std::vector<std::string> kDefaultAnalyses = {"stages", "domains", "allocation", "load_balance"};

struct AnalyzeArgs {
  std::vector<std::string> inputs;
  std::string out = "analysis", python = "/usr/bin/python3";
  std::vector<std::string> analyses = kDefaultAnalyses;
  int64_t max_tokens = 16384, min_count = 5, stability_tokens = 2048;
  experiments::StageOptions stage;
  bool no_plots = false;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  REMOE_CHECK(out, "analyze: cannot write ", path.string());
}

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("remoe_analyze_" + std::to_string(::getpid()));
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// A file-name-safe key per run, unique over the inputs.
std::vector<std::string> run_keys(const std::vector<experiments::RunRecord>& runs) {
  std::vector<std::string> keys;
  std::map<std::string, int> seen;
  for (const experiments::RunRecord& r : runs) {
    std::string k = r.name;
    for (char& c : k)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
    const int n = seen[k]++;
    keys.push_back(n == 0 ? k : k + "-" + std::to_string(n + 1));
  }
  return keys;
}

int run_analyze(const AnalyzeArgs& a) {
  std::set<std::string> wanted;
  for (const std::string& name : a.analyses) {
    REMOE_CHECK(std::find(kAnalyses.begin(), kAnalyses.end(), name) != kAnalyses.end(), "analyze: unknown analysis \"",
                name, "\" (known: stages, domains, allocation, load_balance, stability)");
    wanted.insert(name);
  }
  Scratch scratch;
  std::vector<fs::path> inputs(a.inputs.begin(), a.inputs.end());
  const std::vector<experiments::RunRecord> runs = experiments::load_runs(inputs, scratch.path);
  REMOE_CHECK(!runs.empty(), "analyze: no runs found in the inputs");
  const std::vector<std::string> keys = run_keys(runs);
  const fs::path out(a.out);
  fs::create_directories(out);

  std::string markdown = "# Analyses\n\nRuns: " + std::to_string(runs.size()) + "\n\n";
  std::vector<std::string> written;
  std::vector<std::string> errors;
  if (wanted.count("stages")) {
    std::vector<ordered_json> results;
    for (size_t i = 0; i < runs.size(); ++i) {
      results.push_back(experiments::analyze_stages(runs[i], keys[i], a.stage));
      if (!results.back().value("applies", false)) std::cerr << "remoe analyze: " << results.back()["message"].get<std::string>() << "\n";
    }
    ordered_json j = {{"analysis", "stages"},
                      {"options", {{"rise_fraction", a.stage.rise_fraction}, {"band", a.stage.band},
                                   {"window_steps", a.stage.window_steps}, {"min_stage3_rows", a.stage.min_stage3_rows}}},
                      {"runs", results}};
    write_text(out / "stages.json", j.dump(1) + "\n");
    written.push_back("stages.json");
    markdown += experiments::stages_markdown(results, a.stage) + "\n";
  }
  if (wanted.count("domains") || wanted.count("allocation") || wanted.count("load_balance")) {
    std::vector<ordered_json> domains, allocation, load_balance;
    for (size_t i = 0; i < runs.size(); ++i) {
      try {
        const experiments::RoutingStats st =
            experiments::collect_routing(runs[i].dir, a.max_tokens, wanted.count("allocation") > 0);
        const std::string label = runs[i].label.empty() ? keys[i] : runs[i].label;  // seeds of a point share it
        if (wanted.count("domains")) domains.push_back(experiments::analyze_domains(st, keys[i]));
        if (wanted.count("domains")) domains.back()["label"] = label;
        if (wanted.count("allocation")) allocation.push_back(experiments::analyze_allocation(st, keys[i], a.min_count));
        if (wanted.count("allocation")) allocation.back()["label"] = label;
        if (wanted.count("load_balance")) load_balance.push_back(experiments::analyze_load_balance(st, keys[i], label));
      } catch (const remoe::Error& e) {
        errors.push_back(e.what());
        std::cerr << "remoe analyze: " << e.what() << "\n";
        const ordered_json err = {{"run", runs[i].dir.string()}, {"key", keys[i]}, {"error", e.what()}};
        if (wanted.count("domains")) domains.push_back(err);
        if (wanted.count("allocation")) allocation.push_back(err);
        if (wanted.count("load_balance")) load_balance.push_back(err);
      }
    }
    auto dump = [&](const char* name, const std::vector<ordered_json>& results) {
      ordered_json j = {{"analysis", name}, {"max_tokens_per_domain", a.max_tokens}, {"runs", results}};
      if (std::string(name) == "allocation") j["min_count"] = a.min_count;
      if (std::string(name) == "load_balance") j["png"] = "load_balance.png";  // all runs compared
      write_text(out / (std::string(name) + ".json"), j.dump(1) + "\n");
      written.push_back(std::string(name) + ".json");
    };
    if (wanted.count("domains")) {
      dump("domains", domains);
      markdown += experiments::domains_markdown(domains) + "\n";
    }
    if (wanted.count("allocation")) {
      dump("allocation", allocation);
      markdown += experiments::allocation_markdown(allocation) + "\n";
    }
    if (wanted.count("load_balance")) {
      dump("load_balance", load_balance);
      markdown += experiments::load_balance_markdown(load_balance) + "\n";
    }
  }
  if (wanted.count("stability")) {
    std::vector<ordered_json> results;
    for (size_t i = 0; i < runs.size(); ++i) {
      try {
        results.push_back(experiments::analyze_stability(runs[i].dir, keys[i], runs[i].label.empty() ? keys[i] : runs[i].label,
                                                         a.stability_tokens));
      } catch (const remoe::Error& e) {
        errors.push_back(e.what());
        std::cerr << "remoe analyze: " << e.what() << "\n";
        results.push_back({{"run", runs[i].dir.string()}, {"key", keys[i]}, {"error", e.what()}});
      }
    }
    ordered_json j = {{"analysis", "stability"}, {"tokens_per_domain", a.stability_tokens}, {"png", "stability.png"}, {"runs", results}};
    write_text(out / "stability.json", j.dump(1) + "\n");
    written.push_back("stability.json");
    markdown += experiments::stability_markdown(results) + "\n";
  }
  write_text(out / "analysis.md", markdown);
  std::cout << markdown << "\nwrote " << (out / "analysis.md").string();
  for (const std::string& w : written) std::cout << ", " << w;
  std::cout << "\n";
  if (!a.no_plots) {
    const fs::path script = fs::path(REMOE_SOURCE_DIR) / "experiments/analyze/plot.py";
    std::string cmd = experiments::shell_quoted(a.python) + " " + experiments::shell_quoted(script.string()) + " " +
                      experiments::shell_quoted(out.string());
    for (const std::string& w : written) cmd += " " + experiments::shell_quoted((out / w).string());
    REMOE_CHECK(std::system(cmd.c_str()) == 0, "analyze: the plots failed (", cmd, "); they need matplotlib for ", a.python,
                " (Debian: apt-get install python3-matplotlib); the JSON and analysis.md are written");
  }
  // A run an analysis could not read is an error of the command (after everything else is written).
  REMOE_CHECK(errors.empty(), "analyze: ", errors.size(), " run(s) failed: ", errors.front());
  return 0;
}

}  // namespace

Command add_analyze_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("analyze", "the paper's analyses of runs: training stages, domain specialisation, expert allocation, load balance, routing stability");
  auto a = std::make_shared<AnalyzeArgs>();
  sub->add_option("runs", a->inputs, "run directories, sweep directories (remoe sweep --runs) or .tar.gz packs")->required();
  sub->add_option("--out", a->out, "output directory (analysis.md, <analysis>.json, *.png)")->capture_default_str();
  sub->add_option("--analyses", a->analyses, "which analyses: stages (metrics.jsonl only), domains, allocation, load_balance (the final checkpoint), stability (every checkpoint)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--max-tokens", a->max_tokens, "held-out tokens per domain routed for domains/allocation/load_balance")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("--stability-tokens", a->stability_tokens,
                  "stability: held-out tokens per domain in the fixed batch every checkpoint routes")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("--min-count", a->min_count, "allocation: token ids with at least this many held-out occurrences")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("--stage-window-steps", a->stage.window_steps, "stages: the running mean covers at least this many steps")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  sub->add_option("--stage-band", a->stage.band, "stages: stage III = running mean within ± this of the target")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  sub->add_option("--python", a->python, "the Python with matplotlib that draws the figures")->capture_default_str();
  sub->add_flag("--no-plots", a->no_plots, "JSON and markdown only");
  const std::shared_ptr<int> threads = add_threads_option(sub);
  return [a, threads]() {
    apply_threads(*threads);
    return run_analyze(*a);
  };
}

}  // namespace remoe::cli
