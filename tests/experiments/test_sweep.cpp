// `remoe sweep` and `remoe report`: sweep files (expansion, names, errors), the run states a sweep
// acts on (skip, resume, restart, budget), packs, and the report's statistics; and a tiny sweep
// end to end through child `remoe train` processes.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/data/build_dataset.h"
#include "experiments/report/eval_table.h"
#include "experiments/report/paper.h"
#include "experiments/report/render.h"
#include "experiments/sweep/pack.h"
#include "experiments/sweep/sweep_runner.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe;
using namespace remoe::experiments;
using nlohmann::ordered_json;

namespace {

// The recipe keys every test sweep shares, then `grid` (the [[axis]] / [[point]] tables).
std::string sweep_text(const std::string& name, const std::string& scale_keys, const std::string& grid,
                       const std::string& experiment = "E") {
  return "[sweep]\nname = \"" + name + "\"\nexperiment = \"" + experiment + "\"\nseeds = 2\n\n"
         "[base]\n\"moe.topk\" = 1\n\"moe.num_experts\" = 4\n\"train.lr\" = 1e-3\n\"train.min_lr\" = 1e-4\n\n"
         "[scale.micro]\n" + scale_keys + "\n[scale.small]\n\"model.d_model\" = 64\n\n" + grid;
}

const char* kEAxis =
    "[[axis]]\nname = \"E\"\nprefix = \"E\"\nkey = \"moe.num_experts\"\nvalues = [4, 8]\n\n"
    "[[axis]]\nname = \"router\"\nkey = \"moe.router\"\nvalues = [\"topk\", \"relu\"]\n";

std::vector<std::string> names_of(const std::vector<PlannedRun>& runs) {
  std::vector<std::string> out;
  for (const PlannedRun& r : runs) out.push_back(r.name);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A two-domain dataset from tests/data/gpl3.txt (SentencePiece vocab 512), built once per binary.
fs::path sweep_dataset() {
  static test::TempDir root("sweep_data");
  static fs::path dir = [] {
    const fs::path d = root.path / "data";
    fs::create_directories(d / "text/train");
    fs::create_directories(d / "text/valid");
    const std::string text = test::read_file_bytes(REMOE_SOURCE_DIR "/tests/data/gpl3.txt");
    std::ofstream train(d / "text/train/legal.jsonl"), valid(d / "text/valid/legal.jsonl");
    std::ofstream train2(d / "text/train/prose.jsonl"), valid2(d / "text/valid/prose.jsonl");
    size_t pos = 0, i = 0;
    while (pos < text.size()) {
      size_t end = std::min(text.find("\n\n", pos), text.size());
      if (end > pos + 20) {
        const ordered_json doc = {{"domain", i % 2 ? "prose" : "legal"}, {"source", "gpl3"}, {"text", text.substr(pos, end - pos)}};
        const bool held = (i / 2) % 8 == 0;
        (i % 2 ? (held ? valid2 : train2) : (held ? valid : train)) << doc.dump() << "\n";
        ++i;
      }
      pos = end + 2;
    }
    train.close(), valid.close(), train2.close(), valid2.close();
    data::BuildOptions o;
    o.out = d;
    o.skip_corpus = true;
    o.vocab_size = 512;
    o.tokenizer_sample_mb = 1;
    data::build_dataset(o);
    return d;
  }();
  return dir;
}

// Tiny training runs (d 16, 1 layer): a few milliseconds a step.
std::string tiny_scale(int64_t steps, int64_t ckpt_interval) {
  return "\"data.dir\" = \"" + sweep_dataset().string() + "\"\n\"model.d_model\" = 16\n\"model.n_layers\" = 1\n"
         "\"model.n_heads\" = 2\n\"model.n_kv_heads\" = 2\n\"model.seq_len\" = 16\n\"train.batch_size\" = 2\n"
         "\"train.steps\" = " + std::to_string(steps) + "\n\"log.interval\" = 5\n\"eval.interval\" = 10\n"
         "\"eval.max_tokens\" = 64\n\"ckpt.interval\" = " + std::to_string(ckpt_interval) + "\n\"ckpt.keep\" = 3\n";
}

// The `remoe` binary next to this test binary (build/tests/ → build/experiments/remoe).
fs::path remoe_binary() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "experiments/remoe"; }

SweepOptions tiny_options(const fs::path& file, const fs::path& runs) {
  SweepOptions o;
  o.file = file;
  o.runs = runs;
  o.exe = remoe_binary();
  o.measure = false;
  o.progress_seconds = 1e9;
  return o;
}

// A hand-made finished run: the files `remoe report` reads, with a known final held-out loss.
void make_run(const fs::path& dir, const std::string& label, int64_t seed, const std::string& router, int64_t experts,
              double loss, const std::string& axis_e) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.toml") << "[run]\nseed = " << seed << "\n[model]\ndense_multiplier = 1\n[moe]\nrouter = \""
                                     << router << "\"\nnum_experts = " << experts
                                     << "\ntopk = 1\ngranularity = 1\n[train]\nsteps = 100\n";
  const ordered_json point = {{"sweep", "hand"}, {"scale", "micro"}, {"experiment", "E"}, {"label", label}, {"seed", seed},
                              {"axis_values", {{"E", axis_e}, {"router", router}}}, {"axis_index", {{"E", 0}, {"router", 0}}},
                              {"compute_matched_to", ""}, {"config_hash", "x"}};
  std::ofstream(dir / "sweep_point.json") << point.dump();
  std::ofstream m(dir / "metrics.jsonl");
  m << ordered_json({{"kind", "train"}, {"step", 50}, {"loss", loss + 1}, {"sparsity", 0.75}, {"lambda", 1e-8}}).dump() << "\n";
  m << ordered_json({{"kind", "eval"}, {"step", 100}, {"valid_loss", loss}}).dump() << "\n";
  // The last eval with two domains at loss ∓ 0.5 (their token-weighted mean is `loss`).
  const ordered_json last_eval = {{"step", 100}, {"valid_loss", loss},
                                  {"domains", {{"legal", {{"loss", loss - 0.5}}}, {"prose", {{"loss", loss + 0.5}}}}}};
  std::ofstream(dir / "summary.json") << ordered_json({{"end", "finished"}, {"steps", 100}, {"tokens_per_s", 1000.0},
                                                       {"final_sparsity", 0.75}, {"last_eval", last_eval}})
                                             .dump();
}

// Hand-made sweep "hand": E4 TopK (5.0, 5.2, 5.4), E4 ReMoE (4.9, 5.0, 5.5) over seeds 1..3.
fs::path make_hand_sweep(const fs::path& root) {
  const double topk[] = {5.0, 5.2, 5.4}, relu[] = {4.9, 5.0, 5.5};
  for (int s = 1; s <= 3; ++s) {
    make_run(root / ("E4-topk-s" + std::to_string(s)), "E4-topk", s, "topk", 4, topk[s - 1], "E4");
    make_run(root / ("E4-relu-s" + std::to_string(s)), "E4-relu", s, "relu", 4, relu[s - 1], "E4");
  }
  return root;
}

}  // namespace

TEST_CASE("sweep file: every point and seed, stable names, scale keys, shared points hash alike") {
  test::TempDir dir("sweep_grid");
  const fs::path file = dir.write("e.toml", sweep_text("e", "\"train.steps\" = 7\n", kEAxis) +
                                                "\n[[point]]\nlabel = \"dense\"\nset = { \"moe.router\" = \"dense\" }\n");
  const SweepSpec spec = load_sweep(file);
  const std::vector<PlannedRun> runs = expand_sweep(spec, "micro", 2);
  CHECK(names_of(runs) == std::vector<std::string>{"E4-topk-s1", "E4-topk-s2", "E4-relu-s1", "E4-relu-s2", "E8-topk-s1",
                                                    "E8-topk-s2", "E8-relu-s1", "E8-relu-s2", "dense-s1", "dense-s2"});
  CHECK(names_of(expand_sweep(load_sweep(file), "micro", 2)) == names_of(runs));  // stable across loads
  CHECK(runs[4].axis_values == std::map<std::string, std::string>{{"E", "E8"}, {"router", "topk"}});
  CHECK(runs[4].axis_index.at("E") == 1);
  Config c = planned_config(runs[7]);
  c.finalize();
  CHECK(c.integer("moe.num_experts") == 8);
  CHECK(c.string("moe.router") == "relu");
  CHECK(c.integer("train.steps") == 7);  // from [scale.micro]
  CHECK(c.integer("run.seed") == 2);
  CHECK(runs[0].config_hash != runs[1].config_hash);  // the seed is part of the config
  Config small = planned_config(expand_sweep(spec, "small", 1)[0]);
  small.finalize();
  CHECK(small.integer("model.d_model") == 64);

  // The same config reached through another grid (G = 1 at E = 4) has the same hash: shared.
  const fs::path g = dir.write("g.toml", sweep_text("g", "\"train.steps\" = 7\n",
                                                    "[[axis]]\nname = \"G\"\nprefix = \"G\"\nkey = \"moe.granularity\"\n"
                                                    "values = [1, 2]\n[[axis]]\nname = \"router\"\nkey = \"moe.router\"\n"
                                                    "values = [\"topk\"]\n"));
  const std::vector<PlannedRun> g_runs = expand_sweep(load_sweep(g), "micro", 2);
  CHECK(g_runs[0].name == "G1-topk-s1");
  // E4-topk-s1 lacks moe.granularity = 1 explicitly, so its key set differs: not shared.
  CHECK(g_runs[0].config_hash != runs[0].config_hash);
}

TEST_CASE("sweep file: bad files get errors naming the file and the key") {
  test::TempDir dir("sweep_bad");
  auto load = [&](const std::string& text) {
    const fs::path f = dir.write("bad.toml", text);
    return error_of([&] { expand_sweep(load_sweep(f), "micro", 1); });
  };
  std::string e = load(sweep_text("b", "\"moe.bogus\" = 1\n", kEAxis));
  CHECK(e.find("bad.toml") != std::string::npos);
  CHECK(e.find("moe.bogus") != std::string::npos);
  e = load(sweep_text("b", "", "[[axis]]\nname = \"E\"\nkey = \"moe.num_experts\"\nvalues = []\n"));
  CHECK(e.find("'E' is empty") != std::string::npos);
  e = load(sweep_text("b", "", "[[axis]]\nname = \"E\"\nkey = \"moe.num_experts\"\nvalues = [0, 4]\n"));
  CHECK(e.find("moe.num_experts") != std::string::npos);
  CHECK(e.find("out of range") != std::string::npos);
  e = load(sweep_text("b", "", ""));
  CHECK(e.find("empty grid") != std::string::npos);
  e = load(sweep_text("b", "", "[[axis]]\nname = \"E\"\nkey = \"moe.num_experts\"\nvalues = [4]\nstep = 2\n"));
  CHECK(e.find("unknown field 'step'") != std::string::npos);
  e = load(sweep_text("b", "", "[[point]]\nlabel = \"m\"\ncompute_matched_to = \"nope\"\n"));
  CHECK(e.find("'nope' names no point") != std::string::npos);
  // A combination that only fails as a whole (heads must divide d_model) names the point.
  e = load(sweep_text("b", "\"model.d_model\" = 30\n\"model.n_heads\" = 4\n", kEAxis));
  CHECK(e.find("point 'E4-topk'") != std::string::npos);
  const fs::path ok = dir.write("ok.toml", sweep_text("b", "", kEAxis));
  CHECK(error_of([&] { expand_sweep(load_sweep(ok), "huge", 1); }).find("no scale 'huge'") != std::string::npos);
  CHECK(error_of([&] { load_sweep(dir.path / "missing.toml"); }).find("not found") != std::string::npos);
}

TEST_CASE("sweep: durations and --only patterns") {
  CHECK(parse_duration("3h") == 10800);
  CHECK(parse_duration("1h30m") == 5400);
  CHECK(parse_duration("45s") == 45);
  CHECK(parse_duration("2.5h") == 9000);
  CHECK(parse_duration("90") == 90);
  CHECK(error_of([] { parse_duration("soon"); }).find("'soon'") != std::string::npos);
  CHECK(error_of([] { parse_duration("3d"); }).find("'3d'") != std::string::npos);
  CHECK(matches_only("E8-relu-s1", ""));
  CHECK(matches_only("E8-relu-s1", "relu"));
  CHECK(matches_only("E8-relu-s1", "E8-*-s1"));
  CHECK_FALSE(matches_only("E16-relu-s1", "E8-*"));
}

TEST_CASE("report: mean ± std over seeds, ReMoE − TopK per seed, the paper's numbers") {
  CHECK(mean_std({}).n == 0);
  const Stat one = mean_std({2.0});
  CHECK(one.mean == 2.0);
  CHECK(one.std == 0.0);
  const Stat four = mean_std({1, 2, 3, 4});
  CHECK(four.mean == doctest::Approx(2.5));
  CHECK(four.std == doctest::Approx(std::sqrt(5.0 / 3.0)));  // sample std

  test::TempDir dir("report_stats");
  const std::vector<RunRecord> runs = load_runs({make_hand_sweep(dir.path / "hand")}, dir.path / "scratch");
  REQUIRE(runs.size() == 6);
  const ReportData data = summarize(runs);
  REQUIRE(data.points.size() == 2);
  const PointStat& topk = data.points[0].router == "topk" ? data.points[0] : data.points[1];
  const PointStat& relu = data.points[0].router == "relu" ? data.points[0] : data.points[1];
  CHECK(topk.row == "E4");
  CHECK(topk.loss.n == 3);
  CHECK(topk.loss.mean == doctest::Approx(5.2));
  CHECK(topk.loss.std == doctest::Approx(0.2));
  CHECK(relu.loss.mean == doctest::Approx(5.133333333));
  CHECK(topk.paper.value() == doctest::Approx(1.971));  // spec §4, E = 4
  CHECK(relu.paper.value() == doctest::Approx(1.961));
  REQUIRE(data.pairs.size() == 1);
  const PairStat& pair = data.pairs[0];
  CHECK(pair.per_seed.at(1) == doctest::Approx(-0.1));
  CHECK(pair.per_seed.at(2) == doctest::Approx(-0.2));
  CHECK(pair.per_seed.at(3) == doctest::Approx(0.1));
  CHECK(pair.diff.mean == doctest::Approx(-0.0666666667));
  CHECK(pair.diff.std == doctest::Approx(std::sqrt((0.0333333333 * 0.0333333333 + 0.1333333333 * 0.1333333333 +
                                                    0.1666666667 * 0.1666666667) / 2)));
  CHECK(pair.held == 2);  // seed 3 has the opposite ordering
  CHECK(pair.paper_diff.value() == doctest::Approx(-0.010));
  const std::string md = report_markdown(data, runs);
  CHECK(md.find("| E4 | 5.2000 ± 0.2000 (3) | 1.971 | 5.1333 ± 0.3215 (3) | 1.961 | -0.0667 ± 0.1528 (3) | -0.010 | 2/3 |") !=
        std::string::npos);
  CHECK(points_csv(data).find("hand,E4,E4-topk,topk,3,5.200000,0.200000,1.971000") != std::string::npos);
}

// A hand-made eval.json (the shape evaluate_run() writes): two domains, two tasks.
void write_eval(const fs::path& run, double loss_a, double loss_b, double acc_x, double acc_y, int64_t limit) {
  const ordered_json j = {
      {"step", 100},
      {"heldout", {{"domains", {{"legal", {{"loss", loss_a}}}, {"prose", {{"loss", loss_b}}}}},
                   {"overall", {{"loss", (loss_a + loss_b) / 2}}}}},
      {"zero_shot", {{"limit", limit}, {"tasks", {{"piqa", {{"acc", acc_x}}}, {"boolq", {{"acc", acc_y}}}}}}}};
  std::ofstream(run / "eval.json") << j.dump();
}

TEST_CASE("report: eval.json folds into a per-domain and zero-shot table, mean ± std over the evaluated seeds") {
  test::TempDir dir("report_eval");
  const fs::path sweep = make_hand_sweep(dir.path / "hand");
  write_eval(sweep / "E4-relu-s1", 4.0, 6.0, 0.5, 0.4, 100);
  write_eval(sweep / "E4-relu-s2", 5.0, 7.0, 0.7, 0.6, 100);
  write_eval(sweep / "E4-topk-s3", 5.5, 5.5, 0.25, 0.75, 0);  // the other point: one seed
  const std::vector<RunRecord> runs = load_runs({sweep}, dir.path / "scratch");
  CHECK_FALSE(eval_table(runs, "no-such-sweep").has_value());
  const std::optional<EvalTable> table = eval_table(runs, runs.front().sweep);
  REQUIRE(table.has_value());
  const EvalTable& t = *table;
  std::vector<std::string> keys;
  for (const EvalColumn& c : t.columns) keys.push_back(c.key);
  CHECK(keys == std::vector<std::string>{"loss:legal", "loss:prose", "loss:all", "acc:piqa", "acc:boolq", "acc:mean"});
  REQUIRE(t.points.size() == 2);
  const EvalPointStat& relu = t.points[0].label == "E4-relu" ? t.points[0] : t.points[1];
  const EvalPointStat& topk = t.points[0].label == "E4-topk" ? t.points[0] : t.points[1];
  CHECK(relu.cells[0].n == 2);
  CHECK(relu.cells[0].mean == doctest::Approx(4.5));
  CHECK(relu.cells[0].std == doctest::Approx(std::sqrt(0.5)));
  CHECK(relu.cells[2].mean == doctest::Approx(5.5));   // all = (4+6)/2, (5+7)/2
  CHECK(relu.cells[5].mean == doctest::Approx(0.55));  // mean accuracy: 0.45 and 0.65
  CHECK(relu.cells[5].std == doctest::Approx(std::sqrt(0.02)));
  CHECK(relu.limit == 100);
  CHECK(topk.cells[3].n == 1);
  CHECK(topk.limit == 0);
  // Hand points are labelled E4-<router>, not the plain router name: no Table 2 number.
  CHECK_FALSE(relu.paper_average.has_value());
  const std::string md = report_markdown(summarize(runs), runs);
  CHECK(md.find("| E4-relu | 4.5000 ± 0.7071 (2) | 6.5000 ± 0.7071 (2) | 5.5000 ± 0.7071 (2) |") != std::string::npos);
  CHECK(report_json(summarize(runs), runs)["sweeps"][0]["eval"]["columns"].size() == 6);

  // The training runs' own final evals: every finished seed, per domain, no zero-shot columns.
  const std::optional<EvalTable> training = eval_table(runs, runs.front().sweep, EvalSource::training);
  REQUIRE(training.has_value());
  CHECK(training->columns.size() == 3);  // legal, prose, all
  REQUIRE(training->points.size() == 2);
  const EvalPointStat& trained_relu = training->points[0].label == "E4-relu" ? training->points[0] : training->points[1];
  CHECK(trained_relu.cells[0].n == 3);
  CHECK(trained_relu.cells[0].mean == doctest::Approx((4.9 + 5.0 + 5.5) / 3 - 0.5));
  CHECK(trained_relu.cells[2].mean == doctest::Approx((4.9 + 5.0 + 5.5) / 3));
  CHECK(eval_table_markdown(*training).find("zero-shot") == std::string::npos);
  CHECK(md.find("### Held-out loss per domain (each run's final eval in training)") != std::string::npos);

  // A plain router's point (label = router name, E = 8, k = 1) gets the paper's zero-shot average.
  RunRecord plain;
  plain.label = plain.router = "relu";
  plain.num_experts = 8;
  plain.topk = 1;
  CHECK(paper_zero_shot_average(plain).value() == doctest::Approx(40.03));
  plain.label = "relu-plain_l1";
  CHECK_FALSE(paper_zero_shot_average(plain).has_value());

  std::ofstream(sweep / "E4-relu-s3/eval.json") << R"({"step": 3})";
  CHECK(error_of([&] { load_runs({sweep}, dir.path / "s2"); }).find("not a `remoe eval` result") != std::string::npos);
}

TEST_CASE("report: a packed archive reports exactly like the directories it came from") {
  test::TempDir dir("report_pack");
  const fs::path sweep = make_hand_sweep(dir.path / "hand");
  fs::create_directories(sweep / "E4-topk-s1/ckpt/step_100");  // checkpoints stay behind
  std::ofstream(sweep / "E4-topk-s1/ckpt/step_100/model.safetensors") << "weights";
  std::vector<fs::path> runs;
  for (const fs::directory_entry& e : fs::directory_iterator(sweep)) runs.push_back(e.path());
  const fs::path archive = dir.path / "out/hand.tar.gz";
  pack_runs(runs, "hand", archive);
  REQUIRE(fs::exists(archive));
  const std::vector<RunRecord> from_dirs = load_runs({sweep}, dir.path / "s1");
  const std::vector<RunRecord> from_pack = load_runs({archive}, dir.path / "s2");
  const ReportData a = summarize(from_dirs), b = summarize(from_pack);
  CHECK(report_markdown(a, from_dirs) == report_markdown(b, from_pack));
  CHECK(report_json(a, from_dirs) == report_json(b, from_pack));
  CHECK_FALSE(fs::exists(dir.path / "s2/0/hand/E4-topk-s1/ckpt"));
  CHECK(fs::exists(dir.path / "s2/0/hand/E4-topk-s1/metrics.jsonl"));
  CHECK(error_of([&] { load_runs({dir.path / "nothing"}, dir.path / "s3"); }).find("not found") != std::string::npos);
}

TEST_CASE("sweep: a tiny sweep end to end; finished runs are skipped, interrupted ones resume, torn ones restart") {
  REQUIRE(fs::exists(remoe_binary()));
  test::TempDir dir("sweep_e2e");
  const fs::path file = dir.write("tiny.toml", sweep_text("tiny", tiny_scale(20, 5),
                                                          "[[axis]]\nname = \"router\"\nkey = \"moe.router\"\n"
                                                          "values = [\"topk\", \"relu\"]\n"));
  const fs::path runs = dir.path / "runs";
  std::ostringstream log;
  const SweepOutcome first = run_sweep(tiny_options(file, runs), log);
  INFO(log.str());
  CHECK(first.total == 4);
  CHECK(first.finished == 4);
  CHECK(first.failed == 0);
  for (const char* name : {"topk-s1", "topk-s2", "relu-s1", "relu-s2"}) {
    CHECK(read_json(runs / name / "summary.json").value("end", "") == "finished");
    CHECK(final_valid_loss(runs / name).has_value());
  }

  // Run again: nothing is started.
  std::ostringstream again;
  CHECK(run_sweep(tiny_options(file, runs), again).finished == 4);
  CHECK(again.str().find("start") == std::string::npos);

  // An interrupted run (newest checkpoint at step 15, no final summary) resumes there; a run that
  // died before its first checkpoint is moved aside (kept) and starts over.
  fs::remove(runs / "relu-s1/summary.json");
  fs::remove_all(runs / "relu-s1/ckpt/step_20");
  fs::remove(runs / "topk-s2/summary.json");
  fs::remove_all(runs / "topk-s2/ckpt");
  const std::vector<PlanEntry> plan = make_plan(tiny_options(file, runs), load_sweep(file));
  CHECK(plan[1].state.status == RunStatus::Stale);
  CHECK(plan[2].state.status == RunStatus::Resumable);
  CHECK(plan[2].state.steps_done == 15);
  std::ostringstream resumed;
  const SweepOutcome third = run_sweep(tiny_options(file, runs), resumed);
  INFO(resumed.str());
  CHECK(third.finished == 4);
  CHECK(resumed.str().find("start relu-s1 (resume at step 15)") != std::string::npos);
  CHECK(resumed.str().find("topk-s2 had no complete checkpoint") != std::string::npos);
  CHECK(test::read_file_bytes(runs / "relu-s1/train.log").find("resumed from") != std::string::npos);
  int aside = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(runs)) aside += e.path().filename().string().rfind("topk-s2.stale-", 0) == 0;
  CHECK(aside == 1);

  // The sweep file changed under the runs: refused, naming the run directory.
  std::string text = test::read_file_bytes(file);
  text.replace(text.find("\"train.lr\" = 1e-3"), 17, "\"train.lr\" = 2e-3");
  dir.write("tiny.toml", text);
  const std::string e = error_of([&] { make_plan(tiny_options(file, runs), load_sweep(file)); });
  CHECK(e.find("another config") != std::string::npos);
  CHECK(e.find("topk-s1") != std::string::npos);
}

TEST_CASE("sweep: the budget stops the children cleanly; the next invocation finishes them") {
  REQUIRE(fs::exists(remoe_binary()));
  test::TempDir dir("sweep_budget");
  const fs::path file = dir.write("b.toml", sweep_text("b", tiny_scale(400, 50),
                                                       "[[axis]]\nname = \"router\"\nkey = \"moe.router\"\n"
                                                       "values = [\"topk\", \"relu\"]\n"));
  SweepOptions o = tiny_options(file, dir.path / "runs");
  o.budget_seconds = 1.0;
  std::ostringstream log;
  const auto t0 = std::chrono::steady_clock::now();
  const SweepOutcome stopped = run_sweep(o, log);
  INFO(log.str());
  CHECK(stopped.stopped);
  CHECK(stopped.finished < 4);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 120);
  CHECK(log.str().find("budget reached") != std::string::npos);
  o.budget_seconds = 0;
  std::ostringstream rest;
  const SweepOutcome done = run_sweep(o, rest);
  INFO(rest.str());
  CHECK(done.finished == 4);
  CHECK_FALSE(done.stopped);
}

TEST_CASE("the committed sweep files expand at both scales, and shared points have one config hash") {
  const fs::path dir = fs::path(REMOE_SOURCE_DIR) / "experiments/sweeps";
  std::map<std::string, std::map<std::string, std::string>> hash;  // file → run name → config hash (micro)
  for (const char* name : {"scaling_e", "scaling_g", "scaling_k", "scaling_n", "sensitivity_alpha", "sensitivity_lambda0",
                           "load_balance", "stability", "routers"}) {
    INFO(name);
    const SweepSpec spec = load_sweep(dir / (std::string(name) + ".toml"));
    CHECK(spec.seeds == 3);
    for (const char* scale : {"micro", "small"}) {
      const std::vector<PlannedRun> runs = expand_sweep(spec, scale, spec.seeds);
      CHECK_FALSE(runs.empty());
      if (std::string(scale) == "micro")
        for (const PlannedRun& r : runs) hash[name][r.name] = r.config_hash;
    }
  }
  CHECK(hash["sensitivity_alpha"].size() == 15);
  CHECK(hash["sensitivity_lambda0"].size() == 15);
  CHECK(hash["load_balance"].size() == 12);
  CHECK(hash["stability"].size() == 18);
  CHECK(hash["routers"].size() == 33);
  for (const char* seed : {"s1", "s2", "s3"}) {
    const std::string s = seed;
    const std::string topk = hash["scaling_e"]["E8-topk-" + s], relu = hash["scaling_e"]["E8-relu-" + s];
    REQUIRE_FALSE(topk.empty());
    REQUIRE_FALSE(relu.empty());
    CHECK(hash["routers"]["topk-" + s] == topk);
    CHECK(hash["load_balance"]["topk-" + s] == topk);
    CHECK(hash["routers"]["relu-" + s] == relu);
    CHECK(hash["load_balance"]["relu-" + s] == relu);
    CHECK(hash["sensitivity_alpha"]["alpha1.2-relu-" + s] == relu);
    CHECK(hash["sensitivity_lambda0"]["l0_1e-08-relu-" + s] == relu);
    CHECK(hash["routers"]["dense-" + s] == hash["scaling_g"]["dense-" + s]);
    CHECK(hash["routers"]["topk-no_aux-" + s] == hash["load_balance"]["topk-no_aux-" + s]);
    CHECK(hash["routers"]["relu-plain_l1-" + s] == hash["load_balance"]["relu-plain_l1-" + s]);
    // Every checkpoint kept: not the E sweep's runs.
    CHECK(hash["stability"]["E8-topk-" + s] != topk);
  }
}
