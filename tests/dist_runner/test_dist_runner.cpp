// `remoe train` under mpirun (CTest runs this binary as one process; it starts `mpirun -np 2
// remoe train` itself): two ranks train the 1-process run's steps (same losses within float
// summation order, the same λ and sparsity), a signal to one rank stops both at the same step
// with one checkpoint, a resume on two ranks is bit-identical to an uninterrupted two-rank run,
// and only rank 0 writes the run directory or prints.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "experiments/runner_fixture.h"

namespace fs = std::filesystem;
using nlohmann::json;
using remoe::test::read_file_bytes;
using remoe::test::read_json;
using remoe::test::temp_root;
using remoe::test::tiny_dataset;

namespace {

// The `remoe` binary next to this test binary (build/tests/ → build/experiments/remoe).
fs::path remoe_binary() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "experiments/remoe"; }

// The tiny run of runner_fixture.h (d 32, 2 layers, E 4, ReMoE) as a config file.
fs::path config_file() {
  static fs::path file = [] {
    fs::path f = temp_root() / "dist_tiny.toml";
    std::ofstream out(f);
    out << "[run]\ndir = \"" << (temp_root() / "runs").string() << "\"\n"
        << "[data]\ndir = \"" << tiny_dataset().string() << "\"\n"
        << "[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\nn_kv_heads = 2\nseq_len = 32\n"
        << "[moe]\nrouter = \"relu\"\nnum_experts = 4\n"
        << "[train]\nbatch_size = 4\nlr = 3e-3\nmin_lr = 3e-4\n"
        << "[log]\ninterval = 1\n[eval]\ninterval = 0\nmax_tokens = 512\n[ckpt]\ninterval = 10\nkeep = 5\n";
    return f;
  }();
  return file;
}

const std::string kEnv = "OMP_NUM_THREADS=1 REMOE_COMM_TIMEOUT=60 ";

std::string mpirun(int np) {
  return std::string(REMOE_MPIEXEC) + " --allow-run-as-root --oversubscribe -np " + std::to_string(np) + " ";
}

// Runs `command` (stdout and stderr into `log`) and returns its exit status.
int run(const std::string& command, const fs::path& log) {
  const std::string line = kEnv + command + " >" + log.string() + " 2>&1";
  MESSAGE(line);
  const int status = std::system(line.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string train_args(const std::string& name, int64_t steps) {
  return " train -c " + config_file().string() + " --run.name=" + name + " --train.steps=" + std::to_string(steps);
}

fs::path run_dir(const std::string& name) { return temp_root() / "runs" / name; }

std::vector<json> train_rows(const std::string& name) {
  std::vector<json> rows;
  std::ifstream in(run_dir(name) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && json::parse(line)["kind"] == "train") rows.push_back(json::parse(line));
  return rows;
}

int64_t count_of(const std::string& text, const std::string& what) {
  int64_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The steps of the rows, which must be 1, 2, ..., n: one row per step, none twice.
void check_one_row_per_step(const std::vector<json>& rows, int64_t n) {
  REQUIRE(static_cast<int64_t>(rows.size()) == n);
  for (int64_t i = 0; i < n; ++i) CHECK(rows[static_cast<size_t>(i)]["step"] == i + 1);
}

}  // namespace

TEST_CASE("mpirun -np 2 remoe train: the 1-process run's losses, λ and sparsity; rank 0 alone writes") {
  const fs::path one_log = temp_root() / "one.log", two_log = temp_root() / "two.log";
  // An evaluation at step 5 (rank 0's, the other waits) and the final one at step 10.
  REQUIRE(run(remoe_binary().string() + train_args("one_process", 10) + " --eval.interval=5", one_log) == 0);
  const int rc = run(mpirun(2) + remoe_binary().string() + train_args("two_ranks", 10) + " --eval.interval=5", two_log);
  const std::string out = read_file_bytes(two_log);
  CAPTURE(out);
  REQUIRE(rc == 0);

  const std::vector<json> a = train_rows("one_process"), b = train_rows("two_ranks");
  check_one_row_per_step(a, 10);
  check_one_row_per_step(b, 10);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    for (const char* key : {"loss", "lm_loss", "aux_or_reg", "grad_norm"})
      CHECK(std::abs(a[i][key].get<double>() - b[i][key].get<double>()) <= 1e-5 * std::abs(a[i][key].get<double>()));
    CHECK(a[i]["lambda"] == b[i]["lambda"]);  // the controller saw the same integer counts
    CHECK(a[i]["sparsity"] == b[i]["sparsity"]);
    CHECK(a[i]["lr"] == b[i]["lr"]);
    CHECK(a[i]["tokens"] == b[i]["tokens"]);  // the global batch, not one rank's share
    CHECK(a[i]["layers"] == b[i]["layers"]);
  }
  CHECK(a.back()["lambda"].get<double>() > 0);
  CHECK(a.front()["lambda"] != a.back()["lambda"]);  // λ moved: the comparison is not trivial

  // Rank 0 alone: one status line per step on stdout, one final line, one eval row, one summary.
  CHECK(count_of(out, "step      5/10") == 1);
  CHECK(count_of(out, "run " + run_dir("two_ranks").string() + " | relu") == 1);
  CHECK(count_of(out, "finished 10 steps") == 1);
  CHECK(count_of(read_file_bytes(run_dir("two_ranks") / "train.log"), "step      5/10") == 1);
  CHECK(count_of(read_file_bytes(run_dir("two_ranks") / "train.log"), "x 2 processes") == 1);
  std::vector<json> evals[2];
  for (int k = 0; k < 2; ++k) {
    std::ifstream in(run_dir(k == 0 ? "one_process" : "two_ranks") / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
      if (json::parse(line)["kind"] == "eval") evals[k].push_back(json::parse(line));
  }
  REQUIRE(evals[0].size() == 2);
  REQUIRE(evals[1].size() == 2);  // once each: rank 0's
  for (size_t i = 0; i < 2; ++i) {
    CHECK(evals[1][i]["step"] == (i == 0 ? 5 : 10));
    const double x = evals[0][i]["valid_loss"].get<double>(), y = evals[1][i]["valid_loss"].get<double>();
    CHECK(std::abs(x - y) <= 1e-5 * x);
  }
  CHECK(read_json(run_dir("two_ranks") / "summary.json")["end"] == "finished");
  CHECK(read_json(run_dir("two_ranks") / "run.json")["world_size"] == 2);
  CHECK_FALSE(read_json(run_dir("one_process") / "run.json").contains("world_size"));
  CHECK(read_json(run_dir("two_ranks") / "ckpt/step_10/state.json")["extra"]["world_size"] == 2);
  CHECK(read_json(run_dir("two_ranks") / "ckpt/step_10/state.json")["lambda"] ==
        read_json(run_dir("one_process") / "ckpt/step_10/state.json")["lambda"]);
  for (const auto& entry : fs::directory_iterator(run_dir("two_ranks") / "ckpt"))
    CHECK(entry.path().filename().string().rfind("step_", 0) == 0);  // no stray temp dirs of another rank

  // A finished run is left as it is, on every rank, said once.
  const fs::path again_log = temp_root() / "again.log";
  REQUIRE(run(mpirun(2) + remoe_binary().string() + train_args("two_ranks", 10) + " --eval.interval=5 --resume",
              again_log) == 0);
  CHECK(count_of(read_file_bytes(again_log), "already finished") == 1);
}

TEST_CASE("mpirun -np 2 remoe train: SIGINT to rank 1 stops both ranks at one step; the resume is bit-identical") {
  const int64_t steps = 20;
  const fs::path straight_log = temp_root() / "straight.log";
  REQUIRE(run(mpirun(2) + remoe_binary().string() + train_args("dist_straight", steps), straight_log) == 0);

  // Rank 1 alone gets SIGINT as step 7 begins (REMOE_TRAIN_FAULT, run.cpp): rank 0 learns it from
  // the step's all-reduced stop flag, so both stop before step 7 and rank 0 writes ckpt/step_7.
  const fs::path stop_log = temp_root() / "stop.log";
  const int rc = run("REMOE_TRAIN_FAULT=sigint:1:7 " + mpirun(2) + remoe_binary().string() + train_args("dist_resumed", steps),
                     stop_log);
  const std::string out = read_file_bytes(stop_log);
  CAPTURE(out);
  CHECK(rc == 130);  // Interrupted, on every rank
  const json summary = read_json(run_dir("dist_resumed") / "summary.json");
  REQUIRE(summary["end"] == "interrupted");
  const int64_t stopped = summary["steps"].get<int64_t>();
  REQUIRE(stopped == 7);
  CHECK(count_of(out, "interrupted by a signal at step " + std::to_string(stopped)) == 1);
  CHECK(fs::exists(run_dir("dist_resumed") / ("ckpt/step_" + std::to_string(stopped)) / "model.safetensors"));
  check_one_row_per_step(train_rows("dist_resumed"), stopped);

  const fs::path resume_log = temp_root() / "resume.log";
  REQUIRE(run(mpirun(2) + remoe_binary().string() + train_args("dist_resumed", steps) + " --resume", resume_log) == 0);
  CHECK(count_of(read_file_bytes(run_dir("dist_resumed") / "train.log"),
                 "resumed from " + (run_dir("dist_resumed") / ("ckpt/step_" + std::to_string(stopped))).string()) == 1);
  const std::vector<json> a = train_rows("dist_straight"), b = train_rows("dist_resumed");
  check_one_row_per_step(a, steps);
  check_one_row_per_step(b, steps);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    // ("tokens" counts from the start of each process, so it restarts at the resume: not compared.)
    for (const char* key : {"loss", "lm_loss", "aux_or_reg", "sparsity", "lambda", "lr", "grad_norm", "layers"})
      CHECK(a[i][key] == b[i][key]);  // exactly
  }
  const std::string last = "ckpt/step_" + std::to_string(steps);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"})
    CHECK(read_file_bytes(run_dir("dist_straight") / last / file) == read_file_bytes(run_dir("dist_resumed") / last / file));
  CHECK(read_json(run_dir("dist_straight") / last / "state.json")["lambda"] ==
        read_json(run_dir("dist_resumed") / last / "state.json")["lambda"]);
  CHECK(read_json(run_dir("dist_straight") / "summary.json")["last_eval"]["valid_loss"] ==
        read_json(run_dir("dist_resumed") / "summary.json")["last_eval"]["valid_loss"]);
  CHECK(read_json(run_dir("dist_resumed") / "run.json")["resumes"][0]["world_size"] == 2);
}

TEST_CASE("mpirun -np 2 remoe train: a batch not divisible by the ranks, or a 1-process checkpoint, is refused") {
  const fs::path log = temp_root() / "odd.log";
  CHECK(run(mpirun(2) + remoe_binary().string() + train_args("odd_batch", 4) + " --train.batch_size=3", log) != 0);
  const std::string out = read_file_bytes(log);
  CHECK(out.find("train.batch_size = 3") != std::string::npos);
  CHECK(out.find("mpirun -np 2") != std::string::npos);
  CHECK(out.find("stopping every rank") != std::string::npos);
  CHECK_FALSE(fs::exists(run_dir("odd_batch") / "metrics.jsonl"));

  // train.deterministic: a checkpoint of one process does not resume bit-identically on two.
  const fs::path first_log = temp_root() / "single_first.log", second_log = temp_root() / "single_second.log";
  REQUIRE(run(remoe_binary().string() + train_args("single_then_two", 4) + " --ckpt.interval=2", first_log) == 0);
  CHECK(run(mpirun(2) + remoe_binary().string() + train_args("single_then_two", 8) +
                " --ckpt.interval=2 --resume --resume-changing=train.steps",
            second_log) != 0);
  // Rank 0 throws while rank 1 waits in a collective for the start point: the job ends at once
  // with rank 0's message (not after REMOE_COMM_TIMEOUT with a timeout's).
  const std::string second = read_file_bytes(second_log);
  CHECK(second.find("rank 0: error: --resume: the checkpoint was written by 1 process(es), this run has 2") !=
        std::string::npos);
  CHECK(second.find("stopping every rank") != std::string::npos);
  CHECK(second.find("did not complete within") == std::string::npos);
}

TEST_CASE("mpirun -np 2 remoe train: a NaN on one rank fails both at the same step; the last good checkpoint stays") {
  const fs::path log = temp_root() / "nan.log";
  const int rc = run("REMOE_TRAIN_FAULT=nan:1:6 " + mpirun(2) + remoe_binary().string() + train_args("dist_nan", 12) +
                         " --ckpt.interval=4",
                     log);
  const std::string out = read_file_bytes(log);
  CAPTURE(out);
  CHECK(rc == 3);  // Failed, on every rank: no hang, no abort
  CHECK(out.find("stopping every rank") == std::string::npos);
  CHECK(count_of(out, "training stopped at step 6") == 1);
  CHECK(count_of(out, "non-finite loss") == 1);
  const json summary = read_json(run_dir("dist_nan") / "summary.json");
  CHECK(summary["end"] == "failed");
  CHECK(summary["steps"] == 6);
  check_one_row_per_step(train_rows("dist_nan"), 6);
  CHECK(count_of(read_file_bytes(run_dir("dist_nan") / "metrics.jsonl"), "\"kind\":\"error\"") == 1);
  CHECK(fs::exists(run_dir("dist_nan") / "ckpt/step_4/model.safetensors"));
  CHECK_FALSE(fs::exists(run_dir("dist_nan") / "ckpt/step_6"));
}

TEST_CASE("mpirun -np 2 remoe train --dist.expert_parallel=2: the 1-process run, the whole model in its checkpoint") {
  const fs::path ref_log = temp_root() / "ep_ref.log", ep_log = temp_root() / "ep_two.log";
  REQUIRE(run(remoe_binary().string() + train_args("ep_ref", 10) + " --eval.interval=5", ref_log) == 0);
  const int rc = run(mpirun(2) + remoe_binary().string() + train_args("ep_two", 10) +
                         " --eval.interval=5 --dist.expert_parallel=2",
                     ep_log);
  CAPTURE(read_file_bytes(ep_log));
  REQUIRE(rc == 0);
  const std::vector<json> a = train_rows("ep_ref"), b = train_rows("ep_two");
  check_one_row_per_step(b, 10);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    for (const char* key : {"loss", "lm_loss", "aux_or_reg", "grad_norm"})
      CHECK(std::abs(a[i][key].get<double>() - b[i][key].get<double>()) <= 1e-5 * std::abs(a[i][key].get<double>()));
    CHECK(a[i]["lambda"] == b[i]["lambda"]);
    CHECK(a[i]["sparsity"] == b[i]["sparsity"]);
  }
  // The evaluations (rank 0, after gathering the experts) and the checkpoint hold the whole model.
  const double va = read_json(run_dir("ep_ref") / "summary.json")["last_eval"]["valid_loss"].get<double>();
  const double vb = read_json(run_dir("ep_two") / "summary.json")["last_eval"]["valid_loss"].get<double>();
  CHECK(std::abs(va - vb) <= 1e-5 * va);
  const auto ma = remoe::load_safetensors((run_dir("ep_ref") / "ckpt/step_10/model.safetensors").string());
  const auto mb = remoe::load_safetensors((run_dir("ep_two") / "ckpt/step_10/model.safetensors").string());
  REQUIRE(ma.size() == mb.size());
  for (const auto& [name, t] : ma) {
    CAPTURE(name);
    CHECK(remoe::test::compare_close(mb.at(name), t, 1e-5, 1e-4) == "");
  }
  const auto oa = remoe::load_safetensors((run_dir("ep_ref") / "ckpt/step_10/optimizer.safetensors").string());
  const auto ob = remoe::load_safetensors((run_dir("ep_two") / "ckpt/step_10/optimizer.safetensors").string());
  for (const auto& [name, t] : oa) {
    CAPTURE(name);
    if (t.dtype() == remoe::DType::i64) CHECK(ob.at(name).to_vector<int64_t>() == t.to_vector<int64_t>());  // step counts
  }
}

TEST_CASE("remoe train --dist.expert_parallel that does not fit is refused before anything is written") {
  const fs::path log = temp_root() / "ep_bad.log";
  CHECK(run(remoe_binary().string() + train_args("ep_bad", 2) + " --dist.expert_parallel=2", log) == 2);
  CHECK(read_file_bytes(log).find("dist.expert_parallel = 2 must divide the 1 processes") != std::string::npos);
  CHECK_FALSE(fs::exists(run_dir("ep_bad") / "metrics.jsonl"));
  CHECK(run(mpirun(2) + remoe_binary().string() + train_args("ep_bad", 2) + " --dist.expert_parallel=2 --moe.router=dense",
            log) != 0);
  CHECK(read_file_bytes(log).find("no experts to split") != std::string::npos);
}
