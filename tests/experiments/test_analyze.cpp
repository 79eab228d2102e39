// `remoe analyze`: the metric functions on hand-built inputs with known answers, then the command
// end to end on tiny trained runs (every JSON/PNG written, sane values, clear errors).
#include <doctest/doctest.h>

#include <cmath>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/analyze/metrics.h"
#include "experiments/analyze/seed_summary.h"
#include "experiments/train/run.h"
#include "runner_fixture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe;
using namespace remoe::experiments;
using remoe::test::read_file_bytes;

namespace {

std::vector<int64_t> steps_1_to(int64_t n) {
  std::vector<int64_t> s;
  for (int64_t i = 1; i <= n; ++i) s.push_back(i);
  return s;
}

}  // namespace

TEST_CASE("analyze metrics: mean_std") {
  const Stat m = mean_std({1.0, 2.0, 3.0, 4.0});
  CHECK(m.n == 4);
  CHECK(m.mean == doctest::Approx(2.5));
  CHECK(m.std == doctest::Approx(std::sqrt(5.0 / 3.0)));
  CHECK(mean_std({7.0}).std == 0.0);
  CHECK(mean_std({}).n == 0);
}

TEST_CASE("analyze: per-label summary over seeds of hand-made results") {
  using nlohmann::ordered_json;
  // Two labels: A with values 1, 2, 3 (mean 2, sample std 1) and a run without a value; B one run.
  std::vector<ordered_json> results{
      {{"key", "A-s1"}, {"label", "A"}, {"v", {1.0, 3.0}}},
      {{"key", "A-s2"}, {"label", "A"}, {"v", {2.0, 2.0}}},
      {{"key", "A-s3"}, {"label", "A"}, {"v", {3.0, 5.0}}},
      {{"key", "A-s4"}, {"label", "A"}, {"v", ordered_json::array({nullptr})}},
      {{"key", "B-s1"}, {"v", {0.5}}},  // no label field: the key names the row
      {{"key", "C-s1"}, {"label", "C"}, {"error", "no checkpoint"}},
  };
  // The first element of v: A's runs give 1, 2, 3 and none.
  const std::string md = remoe::experiments::per_label_summary(
      results, {{"first", "{:.2f}", [](const ordered_json& j) {
                   return j["v"][0].is_number() ? std::optional<double>(j["v"][0].get<double>()) : std::nullopt;
                 }},
                {"spread", "{:.1f}", [](const ordered_json& j) { return remoe::experiments::spread_of(j["v"]); }}});
  CHECK(md.find("| label | runs | first | spread |") == 0);
  CHECK(md.find("| A | 4 | 2.00 ± 1.00 (3) | 1.3 ± 1.2 (3) |") != std::string::npos);  // spreads 2, 0, 2: 4/3 ± 1.155
  CHECK(md.find("| B-s1 | 1 | 0.50 (1) | 0.0 (1) |") != std::string::npos);
  CHECK(md.find("| C") == std::string::npos);  // errors are left out
  CHECK(remoe::experiments::mean_of(ordered_json::array({1.0, nullptr, 2.0})) == doctest::Approx(1.5));
  CHECK_FALSE(remoe::experiments::mean_of(ordered_json::array({nullptr})).has_value());
}

TEST_CASE("analyze metrics: stage boundaries of a step-shaped sparsity curve") {
  // Steps 1..100: 0.5 until step 50, then the target 0.875. Stage I ends at step 51 (0.875 > 0.5 + 0.1·0.375).
  // With a 10-step window the running mean first reaches 0.875 (all ten rows at the target) at step 60;
  // at step 59 it is 0.875 − 0.0375 (outside ±0.01).
  std::vector<double> s;
  for (int i = 1; i <= 100; ++i) s.push_back(i <= 50 ? 0.5 : 0.875);
  const StageResult r = find_stages(steps_1_to(100), s, 0.875);
  CHECK(r.interval == 1);
  CHECK(r.window_rows == 10);
  REQUIRE(r.stage1_end.has_value());
  CHECK(*r.stage1_end == 51);
  REQUIRE(r.stage3_start.has_value());
  CHECK(*r.stage3_start == 60);
  CHECK(*r.first_in_band == 60);  // the first full window in the band
  CHECK(r.out_of_band_fraction == 0.0);
  CHECK(r.stage3_sparsity.n == 41);
  CHECK(r.stage3_sparsity.mean == doctest::Approx(0.875));
  CHECK(r.stage3_sparsity.std == doctest::Approx(0.0));
}

TEST_CASE("analyze metrics: stage I after an initial drop, logged every 20 steps") {
  // Rows at steps 20, 40, …: a drop to 0.1 (running minimum), a rise, then ±0.005 around 0.75.
  const std::vector<int64_t> steps = {20, 40, 60, 80, 100, 120, 140, 160};
  const std::vector<double> s = {0.3, 0.1, 0.12, 0.4, 0.745, 0.755, 0.745, 0.755};
  // Row 60: 0.12 ≤ 0.1 + 0.1·0.65 = 0.165 (still stage I); row 80: 0.4 > 0.165.
  const StageResult r = find_stages(steps, s, 0.75);
  CHECK(r.interval == 20);
  CHECK(r.window_rows == 1);  // one row already averages 20 steps ≥ 10
  CHECK(*r.stage1_end == 80);
  CHECK(*r.stage3_start == 100);
  CHECK(r.stage3_sparsity.n == 4);
  CHECK(r.stage3_sparsity.mean == doctest::Approx(0.75));
  CHECK(r.stage3_sparsity.std == doctest::Approx(std::sqrt(4 * 0.005 * 0.005 / 3.0)));
}

TEST_CASE("analyze metrics: a curve that leaves the band settles only at its last entry, or never") {
  const std::vector<int64_t> steps = {10, 20, 30, 40, 50, 60, 70, 80};
  // In the band at 30–40, out at 50, back from 60 on: stage III starts at 60.
  CHECK(*find_stages(steps, {0.2, 0.5, 0.75, 0.75, 0.9, 0.75, 0.751, 0.749}, 0.75).stage3_start == 60);
  // The first entry is at 30 whatever follows; of the 5 rows after it, one (50) is out of the band.
  const StageResult back = find_stages(steps, {0.2, 0.5, 0.75, 0.75, 0.9, 0.75, 0.751, 0.749}, 0.75);
  CHECK(*back.first_in_band == 30);
  CHECK(back.out_of_band_fraction == doctest::Approx(1.0 / 5.0));
  // Out of the band at the last row: never settled, though it entered the band at 30.
  const StageResult never = find_stages(steps, {0.2, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.8}, 0.75);
  CHECK_FALSE(never.stage3_start.has_value());
  CHECK(never.stage3_sparsity.n == 0);
  CHECK(*never.first_in_band == 30);
  CHECK(never.out_of_band_fraction == doctest::Approx(1.0 / 5.0));
  // In the band for fewer than min_stage3_rows (3) rows at the end: not settled.
  CHECK_FALSE(find_stages(steps, {0.2, 0.5, 0.6, 0.6, 0.6, 0.6, 0.75, 0.75}, 0.75).stage3_start.has_value());
  // Never rising from the start: no stage-I boundary, never in the band.
  const StageResult flat = find_stages(steps, {0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}, 0.75);
  CHECK_FALSE(flat.stage1_end.has_value());
  CHECK_FALSE(flat.first_in_band.has_value());
  CHECK_THROWS_AS(find_stages({1, 1}, {0.1, 0.2}, 0.5), remoe::Error);
  CHECK_THROWS_AS(find_stages({1, 2}, {0.1}, 0.5), remoe::Error);
}

TEST_CASE("analyze metrics: entropy and per-domain fractions of a known routing") {
  CHECK(entropy_bits({1, 1, 1, 1}) == doctest::Approx(2.0));
  CHECK(entropy_bits({5, 0, 0, 0}) == doctest::Approx(0.0));
  CHECK(entropy_bits({2, 1, 1}) == doctest::Approx(1.5));  // p = ½, ¼, ¼
  CHECK(entropy_bits({0, 0}) == 0.0);
  // Domain A: 3 pairs to expert 0, 1 to expert 1; domain B: 2 to expert 2, 2 to expert 3; C: none.
  const auto f = row_fractions({{3, 1, 0, 0}, {0, 0, 2, 2}, {0, 0, 0, 0}});
  CHECK(f[0] == std::vector<double>{0.75, 0.25, 0.0, 0.0});
  CHECK(f[1] == std::vector<double>{0.0, 0.0, 0.5, 0.5});
  CHECK(f[2] == std::vector<double>{0.0, 0.0, 0.0, 0.0});
  CHECK(entropy_bits({3, 1, 0, 0}) == doctest::Approx(-(0.75 * std::log2(0.75) + 0.25 * std::log2(0.25))));
}

TEST_CASE("analyze metrics: Spearman of known ranks, with ties") {
  CHECK(average_ranks({10, 30, 20}) == std::vector<double>{1, 3, 2});
  CHECK(average_ranks({1, 2, 2, 3}) == std::vector<double>{1, 2.5, 2.5, 4});
  CHECK(average_ranks({5, 5, 5}) == std::vector<double>{2, 2, 2});
  CHECK(spearman({1, 2, 3, 4, 5}, {2, 4, 6, 8, 100}) == doctest::Approx(1.0));
  CHECK(spearman({1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}) == doctest::Approx(-1.0));
  // d = (0, 0, 1, −1): 1 − 6·2/(4·15) = 0.8 (no ties: the d² formula holds).
  CHECK(spearman({1, 2, 3, 4}, {1, 2, 4, 3}) == doctest::Approx(0.8));
  // Ties: x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4): Pearson = 4.5 / sqrt(4.5·5) = 0.9486833.
  CHECK(spearman({1, 2, 2, 3}, {1, 2, 3, 4}) == doctest::Approx(4.5 / std::sqrt(4.5 * 5.0)));
  CHECK(std::isnan(spearman({1, 2, 3}, {7, 7, 7})));  // a constant side (TopK's fixed k)
  CHECK(std::isnan(spearman({1}, {2})));
}

TEST_CASE("analyze metrics: load imbalance of a known routing") {
  // 8 pairs over 4 experts as 6, 2, 0, 0: mean 2; population variance (16 + 0 + 4 + 4) / 4 = 6.
  const LoadImbalance a = load_imbalance({6, 2, 0, 0});
  CHECK(a.max_over_mean == doctest::Approx(3.0));
  CHECK(a.min_over_mean == doctest::Approx(0.0));
  CHECK(a.cv == doctest::Approx(std::sqrt(6.0) / 2.0));
  const LoadImbalance balanced = load_imbalance({3, 3, 3});
  CHECK(balanced.max_over_mean == doctest::Approx(1.0));
  CHECK(balanced.min_over_mean == doctest::Approx(1.0));
  CHECK(balanced.cv == doctest::Approx(0.0));
  const LoadImbalance one = load_imbalance({8, 0, 0, 0});  // all on one expert: E and sqrt(E − 1)
  CHECK(one.max_over_mean == doctest::Approx(4.0));
  CHECK(one.cv == doctest::Approx(std::sqrt(3.0)));
  CHECK(std::isnan(load_imbalance({0, 0}).cv));
  CHECK_THROWS_AS(load_imbalance({}), remoe::Error);
  CHECK_THROWS_AS(load_imbalance({1, -1}), remoe::Error);
}

TEST_CASE("analyze metrics: flip rate of two known masks") {
  // T = 2 tokens, E = 3 experts, L = 2 layers.
  // Layer 0: t0 → e0, t1 → e1, then t0 → e0, t1 → e2: 2 entries flip, 1 of 2 rows changes.
  const auto a0 = routing_mask({0, 1}, {0, 1}, 2, 3), b0 = routing_mask({0, 1}, {0, 2}, 2, 3);
  CHECK(a0 == std::vector<uint8_t>{1, 0, 0, 0, 1, 0});
  CHECK(b0 == std::vector<uint8_t>{1, 0, 0, 0, 0, 1});
  // Layer 1 (ReLU-like, variable experts per token): t0 → {e0, e1}, t1 → {}; then t0 → {e1}, t1 → {e2}:
  // 2 entries flip (t0's e0, t1's e2), both rows change.
  const auto a1 = routing_mask({0, 0}, {0, 1}, 2, 3), b1 = routing_mask({0, 1}, {1, 2}, 2, 3);
  CHECK(a1 == std::vector<uint8_t>{1, 1, 0, 0, 0, 0});
  const RoutingFlips f = routing_flips({a0, a1}, {b0, b1}, 3);
  CHECK(f.flip_rate == doctest::Approx(4.0 / 12.0));  // Σ_l |M_i − M_{i−1}| / (L·T·E)
  REQUIRE(f.layer_flip_rate.size() == 2);
  CHECK(f.layer_flip_rate[0] == doctest::Approx(2.0 / 6.0));
  CHECK(f.layer_flip_rate[1] == doctest::Approx(2.0 / 6.0));
  CHECK(f.changed_fraction == doctest::Approx(3.0 / 4.0));
  // The same routing: no flips; the opposite mask: every entry flips.
  CHECK(routing_flips({a0, a1}, {a0, a1}, 3).flip_rate == 0.0);
  std::vector<uint8_t> not_a0(a0.size());
  for (size_t i = 0; i < a0.size(); ++i) not_a0[i] = a0[i] ? 0 : 1;
  CHECK(routing_flips({a0}, {not_a0}, 3).flip_rate == doctest::Approx(1.0));
  CHECK_THROWS_AS(routing_flips({a0}, {a0, a1}, 3), remoe::Error);
  CHECK_THROWS_AS(routing_flips({a0}, {std::vector<uint8_t>(5, 0)}, 3), remoe::Error);
  CHECK_THROWS_AS(routing_mask({2}, {0}, 2, 3), remoe::Error);
}

namespace {

fs::path remoe_exe() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "experiments/remoe"; }

// Runs `remoe analyze ARGS` (stdout to a file); returns the exit status and stderr.
std::pair<int, std::string> analyze_cli(const std::string& args, const fs::path& scratch) {
  const fs::path err = scratch / "stderr.txt";
  const std::string cmd = remoe_exe().string() + " analyze " + args + " > " + (scratch / "stdout.txt").string() + " 2> " + err.string();
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file_bytes(err)};
}

nlohmann::json json_file(const fs::path& p) { return nlohmann::json::parse(read_file_bytes(p)); }

}  // namespace

TEST_CASE("remoe analyze end to end: tiny ReMoE and TopK runs; a dense run and a run without checkpoint fail clearly") {
  REQUIRE(fs::exists(remoe_exe()));
  // ReMoE with a large λ0 so that it sparsifies within the few steps; TopK; dense.
  experiments::RunOptions relu = test::tiny_run("an_relu", 40);
  relu.config.apply_overrides({"--moe.router=relu", "--moe.l1_coeff_init=1e-3", "--ckpt.interval=40"});
  const RunResult r1 = run_training(std::move(relu));
  REQUIRE(r1.end == RunEnd::Finished);
  experiments::RunOptions topk = test::tiny_run("an_topk", 20);
  topk.config.apply_overrides({"--moe.router=topk", "--ckpt.interval=20"});
  const RunResult r2 = run_training(std::move(topk));
  REQUIRE(r2.end == RunEnd::Finished);
  experiments::RunOptions dense = test::tiny_run("an_dense", 10);
  dense.config.apply_overrides({"--moe.router=dense"});
  const RunResult r3 = run_training(std::move(dense));
  REQUIRE(r3.end == RunEnd::Finished);
  // A ReMoE run without checkpoints: the logged files only (what results/ commits).
  const fs::path bare = test::temp_root() / "runs/an_bare";
  fs::create_directories(bare);
  for (const char* f : {"config.toml", "metrics.jsonl", "summary.json"}) fs::copy_file(r1.dir / f, bare / f);

  const fs::path scratch = test::temp_root() / "analyze";
  fs::create_directories(scratch);
  const fs::path out = scratch / "ok";
  auto [rc, err] = analyze_cli(r1.dir.string() + " " + r2.dir.string() + " --out " + out.string() +
                                   " --max-tokens 256 --min-count 2",
                               scratch);
  INFO(err);
  REQUIRE(rc == 0);
  for (const char* f : {"analysis.md", "stages.json", "domains.json", "allocation.json", "stages_an_relu.png",
                        "domains_an_relu.png", "domains_an_topk.png", "allocation_an_relu.png", "allocation_an_topk.png"}) {
    INFO(f);
    CHECK(fs::exists(out / f));
    CHECK(fs::file_size(out / f) > 100);
  }
  CHECK_FALSE(fs::exists(out / "stages_an_topk.png"));  // stages does not apply to TopK
  CHECK(err.find("does not apply to run an_topk") != std::string::npos);

  const nlohmann::json stages = json_file(out / "stages.json");
  REQUIRE(stages["runs"].size() == 2);
  const nlohmann::json& s = stages["runs"][0];
  CHECK(s["applies"] == true);
  CHECK(s["target"].get<double>() == doctest::Approx(0.75));
  CHECK(s["curves"]["step"].size() == 40);
  CHECK(s["window_rows"] == 10);
  if (!s["stage3_start"].is_null()) {
    CHECK(s["stage3_start"].get<int64_t>() <= 40);
    CHECK(std::abs(s["stage3_sparsity"]["mean"].get<double>() - 0.75) < 0.05);
  }
  CHECK(stages["runs"][1]["applies"] == false);

  const nlohmann::json domains = json_file(out / "domains.json");
  REQUIRE(domains["runs"].size() == 2);
  for (const nlohmann::json& d : domains["runs"]) {
    REQUIRE_FALSE(d.contains("error"));
    CHECK(d["domains"] == nlohmann::json({"legal", "prose"}));
    CHECK(d["fractions"].size() == 2);  // layers
    for (const auto& layer : d["fractions"])
      for (const auto& row : layer) {
        double sum = 0;
        for (const auto& v : row) sum += v.get<double>();
        CHECK(sum == doctest::Approx(1.0));
      }
    for (const auto& h : d["mean_entropy_bits"]) {
      CHECK(h.get<double>() >= 0.0);
      CHECK(h.get<double>() <= 2.0 + 1e-9);  // log2(4 experts)
    }
    for (const auto& t : d["tokens"]) CHECK(t.get<int64_t>() > 0);
  }
  // TopK routes exactly k = 1 expert per token.
  for (const auto& a : domains["runs"][1]["active_experts"]) CHECK(a.get<double>() == doctest::Approx(1.0));
  for (const auto& a : domains["runs"][0]["active_experts"]) {
    CHECK(a.get<double>() >= 0.0);
    CHECK(a.get<double>() <= 4.0);
  }

  const nlohmann::json alloc = json_file(out / "allocation.json");
  REQUIRE(alloc["runs"].size() == 2);
  const nlohmann::json& a = alloc["runs"][0];
  CHECK(a["tokens"].get<int64_t>() > 10);
  CHECK(a["most_served"].size() == 10);
  CHECK(a["least_served"].size() == 10);
  CHECK(a["most_served"][0]["active"].get<double>() >= a["least_served"][0]["active"].get<double>());
  CHECK_FALSE(a["most_served"][0]["text"].get<std::string>().empty());
  if (!a["spearman"].is_null()) CHECK(std::abs(a["spearman"].get<double>()) <= 1.0);
  CHECK(alloc["runs"][1]["spearman"].is_null());  // TopK: constant active experts
  const std::string md = read_file_bytes(out / "analysis.md");
  CHECK(md.find("## Stages") != std::string::npos);
  CHECK(md.find("## Domains") != std::string::npos);
  CHECK(md.find("## Allocation") != std::string::npos);

  // A dense run and a run without a checkpoint: non-zero exit, the error names the run.
  auto [rc_dense, err_dense] = analyze_cli(r3.dir.string() + " --analyses domains --no-plots --out " + (scratch / "dense").string(), scratch);
  CHECK(rc_dense != 0);
  CHECK(err_dense.find(r3.dir.string()) != std::string::npos);
  CHECK(err_dense.find("does not dispatch tokens") != std::string::npos);
  auto [rc_bare, err_bare] = analyze_cli(bare.string() + " --analyses allocation --no-plots --out " + (scratch / "bare").string(), scratch);
  CHECK(rc_bare != 0);
  CHECK(err_bare.find(bare.string()) != std::string::npos);
  CHECK(err_bare.find("no complete checkpoint") != std::string::npos);
  // The stages analysis needs no checkpoint.
  auto [rc_stages, err_stages] = analyze_cli(bare.string() + " --analyses stages --out " + (scratch / "bare_stages").string(), scratch);
  INFO(err_stages);
  CHECK(rc_stages == 0);
  CHECK(fs::exists(scratch / "bare_stages/stages_an_bare.png"));
  // An unknown analysis name.
  auto [rc_bad, err_bad] = analyze_cli(bare.string() + " --analyses stagez --out " + (scratch / "bad").string(), scratch);
  CHECK(rc_bad != 0);
  CHECK(err_bad.find("unknown analysis") != std::string::npos);
}

TEST_CASE("remoe analyze stability and load_balance end to end; a run with one checkpoint gets the stability error") {
  REQUIRE(fs::exists(remoe_exe()));
  // Checkpoints every 5 of 20 steps, all kept: 4 per run.
  experiments::RunOptions relu = test::tiny_run("st_relu", 20);
  relu.config.apply_overrides({"--moe.router=relu", "--moe.l1_coeff_init=1e-3", "--ckpt.interval=5", "--ckpt.keep=10"});
  const RunResult r1 = run_training(std::move(relu));
  REQUIRE(r1.end == RunEnd::Finished);
  experiments::RunOptions topk = test::tiny_run("st_topk", 20);
  topk.config.apply_overrides({"--moe.router=topk", "--ckpt.interval=5", "--ckpt.keep=10"});
  const RunResult r2 = run_training(std::move(topk));
  REQUIRE(r2.end == RunEnd::Finished);
  experiments::RunOptions one = test::tiny_run("st_one", 10);  // a checkpoint only at the end
  one.config.apply_overrides({"--moe.router=topk", "--ckpt.interval=0"});
  const RunResult r3 = run_training(std::move(one));
  REQUIRE(r3.end == RunEnd::Finished);

  const fs::path scratch = test::temp_root() / "analyze_stability";
  fs::create_directories(scratch);
  const fs::path out = scratch / "ok";
  auto [rc, err] = analyze_cli(r1.dir.string() + " " + r2.dir.string() + " --analyses stability,load_balance --out " +
                                   out.string() + " --max-tokens 256 --stability-tokens 128",
                               scratch);
  INFO(err);
  REQUIRE(rc == 0);
  for (const char* f : {"analysis.md", "stability.json", "load_balance.json", "stability.png", "load_balance.png",
                        "load_balance_st_relu.png", "load_balance_st_topk.png"}) {
    INFO(f);
    CHECK(fs::exists(out / f));
    if (fs::exists(out / f)) CHECK(fs::file_size(out / f) > 100);
  }

  const nlohmann::json st = json_file(out / "stability.json");
  REQUIRE(st["runs"].size() == 2);
  for (const nlohmann::json& r : st["runs"]) {
    REQUIRE_FALSE(r.contains("error"));
    CHECK(r["checkpoints"] == nlohmann::json({5, 10, 15, 20}));
    CHECK(r["experts"] == 4);
    CHECK(r["layers"] == 2);
    CHECK(r["tokens"].get<int64_t>() >= 2 * 128);
    REQUIRE(r["pairs"]["flip_rate"].size() == 3);
    CHECK(r["pairs"]["from"] == nlohmann::json({5, 10, 15}));
    CHECK(r["pairs"]["to"] == nlohmann::json({10, 15, 20}));
    for (size_t i = 0; i < 3; ++i) {
      const double flip = r["pairs"]["flip_rate"][i].get<double>(), changed = r["pairs"]["changed_fraction"][i].get<double>();
      CHECK(flip >= 0.0);
      CHECK(flip <= 1.0);
      CHECK(changed >= flip);  // a changed row flips at most E of its E entries
      CHECK(r["pairs"]["layer_flip_rate"][i].size() == 2);
    }
    CHECK(r["mean_flip_rate"].get<double>() >= 0.0);
    CHECK_FALSE(r["late_mean_flip_rate"].is_null());
    // Means over the 3 pairs; "late" = the pairs ending past step 10 of 20 (15 and 20).
    const auto& fr = r["pairs"]["flip_rate"];
    const auto& ch = r["pairs"]["changed_fraction"];
    CHECK(r["mean_flip_rate"].get<double>() ==
          doctest::Approx((fr[0].get<double>() + fr[1].get<double>() + fr[2].get<double>()) / 3));
    CHECK(r["late_mean_flip_rate"].get<double>() == doctest::Approx((fr[1].get<double>() + fr[2].get<double>()) / 2));
    CHECK(r["mean_changed_fraction"].get<double>() ==
          doctest::Approx((ch[0].get<double>() + ch[1].get<double>() + ch[2].get<double>()) / 3));
    CHECK(r["late_mean_changed_fraction"].get<double>() ==
          doctest::Approx((ch[1].get<double>() + ch[2].get<double>()) / 2));
  }
  // TopK routes exactly k = 1 of E = 4 per token: density 1/4 at every checkpoint, and a changed row flips
  // exactly 2 entries, so flip rate = changed · 2/E.
  const nlohmann::json& tk = st["runs"][1];
  CHECK(tk["router"] == "topk");
  for (const auto& d : tk["density"]) CHECK(d.get<double>() == doctest::Approx(0.25));
  for (size_t i = 0; i < 3; ++i)
    CHECK(tk["pairs"]["flip_rate"][i].get<double>() == doctest::Approx(tk["pairs"]["changed_fraction"][i].get<double>() * 0.5));

  const nlohmann::json lb = json_file(out / "load_balance.json");
  REQUIRE(lb["runs"].size() == 2);
  for (const nlohmann::json& r : lb["runs"]) {
    REQUIRE_FALSE(r.contains("error"));
    CHECK(r["step"] == 20);
    REQUIRE(r["load"].size() == 2);
    for (size_t l = 0; l < 2; ++l) {
      double sum = 0;
      for (const auto& v : r["load"][l]) sum += v.get<double>();
      CHECK(sum == doctest::Approx(1.0));
      CHECK(r["max_over_mean"][l].get<double>() >= 1.0);
      CHECK(r["max_over_mean"][l].get<double>() <= 4.0 + 1e-9);
      CHECK(r["cv"][l].get<double>() >= 0.0);
      CHECK(r["cv"][l].get<double>() <= std::sqrt(3.0) + 1e-9);
      CHECK(r["sparsity"][l].get<double>() >= 0.0);
      CHECK(r["sparsity"][l].get<double>() <= 1.0);
    }
    CHECK(r["target_sparsity"].get<double>() == doctest::Approx(0.75));
  }
  for (const auto& v : lb["runs"][1]["sparsity"]) CHECK(v.get<double>() == doctest::Approx(0.75));  // TopK k = 1 of 4
  const std::string md = read_file_bytes(out / "analysis.md");
  CHECK(md.find("## Stability") != std::string::npos);
  CHECK(md.find("| label | runs | mean flip rate | late flip rate | mean changed | late changed |") != std::string::npos);
  CHECK(md.find("## Load balance") != std::string::npos);

  // A run whose newest checkpoint is before train.steps (still training, or stopped early): analysed, with a note.
  const fs::path partial = scratch / "st_partial";
  fs::copy(r1.dir, partial, fs::copy_options::recursive);
  fs::remove_all(partial / "ckpt" / "step_20");
  auto [rc_part, err_part] = analyze_cli(partial.string() + " --analyses stability --no-plots --stability-tokens 128 --out " +
                                             (scratch / "partial").string(),
                                         scratch);
  INFO(err_part);
  REQUIRE(rc_part == 0);
  const nlohmann::json sp = json_file(scratch / "partial" / "stability.json");
  CHECK(sp["runs"][0]["checkpoints"] == nlohmann::json({5, 10, 15}));
  CHECK(sp["runs"][0]["checkpoint_note"] == "the newest checkpoint is step 15 of 20 (the run did not finish)");
  CHECK(read_file_bytes(scratch / "partial" / "analysis.md").find("the run did not finish") != std::string::npos);
  CHECK_FALSE(st["runs"][0].contains("checkpoint_note"));  // the finished runs above have none

  // One checkpoint: the stability error names the run; load_balance of the same run still works.
  auto [rc_one, err_one] = analyze_cli(r3.dir.string() + " --analyses stability --no-plots --out " + (scratch / "one").string(), scratch);
  CHECK(rc_one != 0);
  CHECK(err_one.find(r3.dir.string()) != std::string::npos);
  CHECK(err_one.find("needs at least 2") != std::string::npos);
  auto [rc_lb, err_lb] = analyze_cli(r3.dir.string() + " --analyses load_balance --no-plots --max-tokens 128 --out " +
                                         (scratch / "one_lb").string(),
                                     scratch);
  INFO(err_lb);
  CHECK(rc_lb == 0);
}
