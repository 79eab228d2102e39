// `remoe report RUNS... --out DIR`: markdown tables (mean ± std over seeds, the paper's numbers,
// ReMoE − TopK per seed), report.json and CSVs of every number, and the plots, which
// experiments/report/plot.py draws with matplotlib (Debian's /usr/bin/python3).
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "core/error.h"
#include "experiments/cli/commands.h"
#include "experiments/report/render.h"
#include "experiments/sweep/pack.h"

namespace remoe::cli {
namespace fs = std::filesystem;

namespace {

struct ReportArgs {
  std::vector<std::string> inputs;
  std::string out = "report", python = "/usr/bin/python3";
  bool no_plots = false;
};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  REMOE_CHECK(out, "report: cannot write ", path.string());
}

// Removes the directory where archives were unpacked, also when loading throws.
struct Scratch {
  fs::path path = fs::temp_directory_path() / ("remoe_report_" + std::to_string(::getpid()));
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

int run_report(const ReportArgs& a) {
  Scratch scratch;
  std::vector<fs::path> inputs(a.inputs.begin(), a.inputs.end());
  const std::vector<experiments::RunRecord> runs = experiments::load_runs(inputs, scratch.path);
  REMOE_CHECK(!runs.empty(), "report: no runs found in the inputs");
  const experiments::ReportData data = experiments::summarize(runs);
  const fs::path out(a.out);
  fs::create_directories(out);
  const std::string markdown = experiments::report_markdown(data, runs);
  write_text(out / "report.md", markdown);
  write_text(out / "report.json", experiments::report_json(data, runs).dump(1) + "\n");
  write_text(out / "points.csv", experiments::points_csv(data));
  write_text(out / "pairs.csv", experiments::pairs_csv(data));
  std::cout << markdown << "\nwrote " << (out / "report.md").string() << ", report.json, points.csv, pairs.csv\n";
  if (a.no_plots) return 0;
  const fs::path script = fs::path(REMOE_SOURCE_DIR) / "experiments/report/plot.py";
  const std::string cmd = experiments::shell_quoted(a.python) + " " + experiments::shell_quoted(script.string()) + " " +
                          experiments::shell_quoted((out / "report.json").string()) + " " +
                          experiments::shell_quoted(out.string());
  REMOE_CHECK(std::system(cmd.c_str()) == 0, "report: the plots failed (", cmd,
              "); they need matplotlib for ", a.python, " (Debian: apt-get install python3-matplotlib); the tables are written");
  return 0;
}

}  // namespace

Command add_report_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("report", "tables and plots from run directories, sweep directories or `sweep --pack` archives");
  auto a = std::make_shared<ReportArgs>();
  sub->add_option("runs", a->inputs, "run directories, sweep directories (remoe sweep --runs) or .tar.gz packs")->required();
  sub->add_option("--out", a->out, "output directory (report.md, report.json, *.csv, *.png)")->capture_default_str();
  sub->add_option("--python", a->python, "the Python with matplotlib that draws the plots")->capture_default_str();
  sub->add_flag("--no-plots", a->no_plots, "tables, JSON and CSV only");
  return [a]() { return run_report(*a); };
}

}  // namespace remoe::cli
