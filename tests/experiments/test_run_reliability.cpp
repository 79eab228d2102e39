// The run directory cannot be corrupted (issue 11): one writer per run, checkpoint re-saves that
// survive a kill at any stage, checkpoints and state.json validated as data, resume that
// continues the same run or refuses, data files changing under a run, and the dead ends.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "experiments/data/dataset.h"
#include "experiments/data/hash.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run.h"
#include "experiments/train/run_eval.h"
#include "experiments/train/run_lock.h"
#include "runner_fixture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe;
using namespace remoe::experiments;
using test::read_file_bytes;
using test::read_json;
using test::temp_root;
using test::tiny_run;

namespace {

// A pid that no process has (beyond Linux's pid_max).
constexpr int64_t kDeadPid = 999999999;

ModelConfig small_model_config(uint64_t seed) {
  ModelConfig mc;
  mc.vocab_size = 50;
  mc.d_model = 16;
  mc.n_layers = 1;
  mc.n_heads = 2;
  mc.n_kv_heads = 2;
  mc.num_experts = 4;
  mc.seed = seed;
  return mc;
}

TrainState state_at(int64_t step) { return TrainState{step, {1e-4, step}, 7, nlohmann::ordered_json::object()}; }

// Sets REMOE_CKPT_FAULT for the scope.
struct FaultInjection {
  explicit FaultInjection(const std::string& stage) { ::setenv("REMOE_CKPT_FAULT", stage.c_str(), 1); }
  ~FaultInjection() { ::unsetenv("REMOE_CKPT_FAULT"); }
};

// Rewrites a checkpoint file through `edit` and re-records its size and hash in state.json, so
// the checkpoint verifies and only the loader's own checks can catch what the edit did.
template <class Edit>
void edit_and_rehash(const fs::path& dir, const std::string& file, Edit edit) {
  std::string bytes = read_file_bytes(dir / file);
  edit(bytes);
  std::ofstream(dir / file, std::ios::binary | std::ios::trunc) << bytes;
  nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file_bytes(dir / "state.json"));
  state["files"][file]["bytes"] = bytes.size();
  state["files"][file]["fnv1a64"] = data::hex64(data::fnv1a64(bytes.data(), bytes.size()));
  std::ofstream(dir / "state.json", std::ios::trunc) << state.dump(2);
}

// Edits one field of a checkpoint's state.json.
template <class Edit>
void edit_state(const fs::path& dir, Edit edit) {
  nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file_bytes(dir / "state.json"));
  edit(state);
  std::ofstream(dir / "state.json", std::ios::trunc) << state.dump(2);
}

std::string log_text(const fs::path& run_dir) { return read_file_bytes(run_dir / "train.log"); }

}  // namespace

// ---- one process per run directory ----

TEST_CASE("run lock: a second trainer or evaluator of a run is refused, naming the holder's pid") {
  const fs::path run_dir = temp_root() / "runs" / "locked";
  // The holder is another process, as with two `remoe train` started together.
  int ready[2], release[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(release) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int status = 0;
    try {
      RunDirLock lock = RunDirLock::acquire(run_dir, "child");
      char c = 1;
      status = ::write(ready[1], &c, 1) == 1 && ::read(release[0], &c, 1) == 1 ? 0 : 2;
    } catch (...) {
      status = 1;
    }
    ::_exit(status);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  const std::string holder = "process " + std::to_string(child);
  CHECK_THROWS_WITH_ALL(run_training(tiny_run("locked", 4)), "remoe train", "locked", "in use by",
                        holder.c_str());
  RunEvalOptions e;
  e.run_dir = run_dir;
  std::ofstream(run_dir / "config.toml") << "";
  CHECK_THROWS_WITH_ALL(evaluate_run(e), "remoe eval", "in use by", holder.c_str());
  fs::remove(run_dir / "config.toml");
  CHECK_FALSE(fs::exists(run_dir / "metrics.jsonl"));  // the refused trainer wrote nothing
  REQUIRE(::write(release[1], &c, 1) == 1);
  int status = -1;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);

  // The kernel released the lock with the process: the run can start now.
  CHECK(run_training(tiny_run("locked", 4)).end == RunEnd::Finished);
}

// ---- checkpoint re-save safety ----

TEST_CASE("checkpoints: a kill at any stage of a re-save leaves a complete checkpoint (keep = 1)") {
  for (const char* stage : {"model.safetensors", "optimizer.safetensors", "state.json", "aside", "swap"}) {
    CAPTURE(stage);
    test::TempDir dir("resave");
    const fs::path root = dir.path / "ckpt";
    Transformer first(small_model_config(1)), second(small_model_config(2));
    AdamW opt1(first.named_parameters()), opt2(second.named_parameters());
    save_checkpoint(root, first, opt1, state_at(5));
    {
      FaultInjection fault(stage);
      CHECK_THROWS_WITH_ALL(save_checkpoint(root, second, opt2, state_at(5)), "fault injected", stage);
    }
    // What the next start does under the run lock: put back or promote, then prune to keep = 1.
    const std::vector<std::string> actions = recover_checkpoints(root);
    prune_checkpoints(root, 1);
    const auto latest = latest_checkpoint(root);
    REQUIRE(latest.has_value());
    CHECK(*latest == root / "step_5");
    Transformer loaded(small_model_config(3));
    CHECK(load_checkpoint(*latest, loaded, nullptr).step == 5);
    const auto w = loaded.named_parameters()[0].second.to_vector<float>();
    const bool is_first = w == first.named_parameters()[0].second.to_vector<float>();
    const bool is_second = w == second.named_parameters()[0].second.to_vector<float>();
    CHECK((is_first || is_second));
    // Nothing but step_5 is left behind.
    int64_t entries = 0;
    for (const auto& entry : fs::directory_iterator(root)) entries += entry.path().filename() != "step_5";
    CHECK(entries == 0);
    if (std::string(stage) == "aside") CHECK(actions.size() == 2);  // both copies were complete
  }
}

TEST_CASE("checkpoints: leftovers of dead writers are removed or promoted, and reported") {
  test::TempDir dir("leftovers");
  const fs::path root = dir.path / "ckpt";
  Transformer model(small_model_config(1));
  AdamW opt(model.named_parameters());
  save_checkpoint(root, model, opt, state_at(4));
  // An incomplete temp dir of a dead process, and a complete one whose rename never happened.
  const std::string torn = ".tmp-step_9-" + std::to_string(kDeadPid);
  fs::create_directories(root / torn);
  std::ofstream(root / torn / "model.safetensors") << "partial";
  const std::string complete = ".tmp-step_6-" + std::to_string(kDeadPid);
  save_checkpoint(root, model, opt, state_at(6));
  fs::rename(root / "step_6", root / complete);
  // A temp dir of a live process (pid 1) is not touched.
  const std::string live = ".tmp-step_8-1";
  fs::create_directories(root / live);

  const std::vector<std::string> actions = recover_checkpoints(root);
  std::string all;
  for (const std::string& a : actions) all += a + "\n";
  CAPTURE(all);
  CHECK_FALSE(fs::exists(root / torn));
  CHECK(all.find("removed " + torn) != std::string::npos);
  CHECK(all.find("incomplete") != std::string::npos);
  CHECK(fs::exists(root / "step_6"));
  CHECK(all.find("restored step_6 from " + complete) != std::string::npos);
  CHECK(fs::exists(root / live));
  CHECK(all.find("left " + live + " alone") != std::string::npos);
  CHECK(latest_checkpoint(root).value() == root / "step_6");
}

TEST_CASE("checkpoints: retention never deletes a good checkpoint for a newer one that does not verify") {
  test::TempDir dir("keep");
  const fs::path root = dir.path / "ckpt";
  Transformer model(small_model_config(1));
  AdamW opt(model.named_parameters());
  save_checkpoint(root, model, opt, state_at(4));
  save_checkpoint(root, model, opt, state_at(8));
  std::ofstream(root / "step_8/optimizer.safetensors", std::ios::app) << "x";  // damaged after the write
  prune_checkpoints(root, 1);
  CHECK(fs::exists(root / "step_4"));
  CHECK(latest_checkpoint(root).value() == root / "step_4");
}

// ---- state.json and checkpoints validated as data ----

TEST_CASE("checkpoints: corrupt state.json fields are named, and the newest good checkpoint is used") {
  test::TempDir dir("state_fields");
  const fs::path root = dir.path / "ckpt";
  Transformer model(small_model_config(1));
  AdamW opt(model.named_parameters());
  save_checkpoint(root, model, opt, state_at(4));
  const fs::path bad = save_checkpoint(root, model, opt, state_at(8));
  const nlohmann::ordered_json good = nlohmann::ordered_json::parse(read_file_bytes(bad / "state.json"));

  struct Case {
    const char* what;
    std::function<void(nlohmann::ordered_json&)> edit;
    std::vector<const char*> expect;
  };
  const std::vector<Case> cases = {
      {"step as a string", [](auto& j) { j["step"] = "8"; }, {"state.json", "\"step\"", "integer"}},
      {"negative step", [](auto& j) { j["step"] = -8; }, {"state.json", "\"step\"", ">= 0"}},
      {"step of another directory", [](auto& j) { j["step"] = 9; }, {"step 9", "step 8"}},
      {"missing lambda", [](auto& j) { j.erase("lambda"); }, {"state.json", "missing field \"lambda\""}},
      {"lambda as text", [](auto& j) { j["lambda"] = "0.1"; }, {"\"lambda\"", "finite number"}},
      {"negative data seed", [](auto& j) { j["data_seed"] = -1; }, {"\"data_seed\""}},
      {"files not listed", [](auto& j) { j["files"].erase("optimizer.safetensors"); }, {"optimizer.safetensors"}},
      {"hash as a number", [](auto& j) { j["files"]["model.safetensors"]["fnv1a64"] = 5; }, {"fnv1a64", "string"}},
      {"threads as text", [](auto& j) { j["extra"]["threads"] = "two"; }, {"extra.threads"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    edit_state(bad, [&](auto& j) {
      j = good;
      c.edit(j);
    });
    const std::string problem = verify_checkpoint(bad).value_or("");
    for (const char* part : c.expect) CHECK_MESSAGE(problem.find(part) != std::string::npos, problem);
    const CheckpointChoice choice = choose_checkpoint(root);
    REQUIRE(choice.chosen.has_value());
    CHECK(*choice.chosen == root / "step_4");
    CHECK(choice.fallback_note().find("using step_4, not the newer step_8") != std::string::npos);
    Transformer other(small_model_config(2));
    CHECK_THROWS_WITH_ALL(load_checkpoint(bad, other, nullptr), "step_8", "not usable");
  }
  // A step beyond the run's train.steps is passed over too.
  edit_state(bad, [&](auto& j) { j = good; });
  CHECK(choose_checkpoint(root, 6).chosen.value() == root / "step_4");
  CHECK(choose_checkpoint(root, 6).fallback_note().find("beyond the run's train.steps = 6") != std::string::npos);
}

TEST_CASE("checkpoints: a tensor relabelled to another dtype, or holding NaN, is refused by name") {
  test::TempDir dir("tensors");
  const fs::path root = dir.path / "ckpt";
  Transformer model(small_model_config(1));
  AdamW opt(model.named_parameters());
  const fs::path ckpt = save_checkpoint(root, model, opt, state_at(3));
  const std::string name = model.named_parameters()[0].first;
  SUBCASE("dtype relabelled in the safetensors header (same byte count)") {
    edit_and_rehash(ckpt, "model.safetensors", [&](std::string& bytes) {
      const auto entry = bytes.find("\"" + name + "\":{");
      REQUIRE(entry != std::string::npos);
      const auto dtype = bytes.find("\"dtype\":\"F32\"", entry);
      REQUIRE(dtype != std::string::npos);
      REQUIRE(dtype < bytes.find('}', entry));  // inside this tensor's entry
      bytes.replace(bytes.find("F32", dtype), 3, "I32");
    });
    REQUIRE_FALSE(verify_checkpoint(ckpt).has_value());
    Transformer other(small_model_config(2));
    CHECK_THROWS_WITH_ALL(load_checkpoint(ckpt, other, nullptr), name.c_str(), "dtype", "i32", "f32");
  }
  SUBCASE("NaN in a weight") {
    auto tensors = load_safetensors((ckpt / "model.safetensors").string());
    tensors[name] = full(tensors[name].shape(), std::nan(""));
    save_safetensors((ckpt / "model.safetensors").string(), NamedTensors(tensors.begin(), tensors.end()));
    edit_and_rehash(ckpt, "model.safetensors", [](std::string&) {});
    Transformer other(small_model_config(2));
    CHECK_THROWS_WITH_ALL(load_checkpoint(ckpt, other, nullptr), name.c_str(), "non-finite");
  }
  SUBCASE("infinity in an optimizer moment") {
    auto tensors = load_safetensors((ckpt / "optimizer.safetensors").string());
    const std::string moment = name + ".exp_avg_sq";
    REQUIRE(tensors.count(moment));
    tensors[moment] = full(tensors[moment].shape(), INFINITY);
    save_safetensors((ckpt / "optimizer.safetensors").string(), NamedTensors(tensors.begin(), tensors.end()));
    edit_and_rehash(ckpt, "optimizer.safetensors", [](std::string&) {});
    Transformer other(small_model_config(2));
    AdamW other_opt(other.named_parameters());
    CHECK_THROWS_WITH_ALL(load_checkpoint(ckpt, other, &other_opt), moment.c_str(), "non-finite");
  }
}

// ---- resume continues the same run or refuses ----

TEST_CASE("resume: a changed router, seed or size is refused listing keys and values; fewer steps too") {
  RunOptions first = tiny_run("refuse", 10);
  REQUIRE(run_training(std::move(first)).end == RunEnd::Finished);

  RunOptions router = tiny_run("refuse", 10);
  router.resume = true;
  router.config.set("moe.router", "topk");
  router.config.set("run.seed", int64_t{99});
  CHECK_THROWS_WITH_ALL(run_training(std::move(router)), "--resume", "changes the model or the data",
                        "moe.router: the run has \"relu\", this command \"topk\"", "run.seed", "1234", "99");

  RunOptions allowed_is_not_enough = tiny_run("refuse", 10);
  allowed_is_not_enough.resume = true;
  allowed_is_not_enough.resume_changing = {"model.d_model"};
  CHECK_THROWS_WITH_ALL(run_training(std::move(allowed_is_not_enough)), "--resume-changing model.d_model",
                        "changes the model or the data");

  RunOptions fewer = tiny_run("refuse", 6);
  fewer.resume = true;
  fewer.resume_changing = {"train.steps"};
  CHECK_THROWS_WITH_ALL(run_training(std::move(fewer)), "step 10", "train.steps = 6", "cannot go back");

  RunOptions unaccepted = tiny_run("refuse", 20);
  unaccepted.resume = true;
  CHECK_THROWS_WITH_ALL(run_training(std::move(unaccepted)), "train.steps: the run has 10, this command 20",
                        "--resume-changing");
  // None of the refusals touched the finished run.
  CHECK(read_json(temp_root() / "runs/refuse/summary.json")["end"] == "finished");
  CHECK(fs::exists(temp_root() / "runs/refuse/ckpt/step_10"));
}

TEST_CASE("resume: a finished run is left as it is; an accepted change is recorded in config.toml and run.json") {
  REQUIRE(run_training(tiny_run("finished", 6)).end == RunEnd::Finished);
  const fs::path dir = temp_root() / "runs/finished";
  const std::string summary = read_file_bytes(dir / "summary.json"), metrics = read_file_bytes(dir / "metrics.jsonl");
  RunOptions again = tiny_run("finished", 6);
  again.resume = true;
  const RunResult r = run_training(std::move(again));
  CHECK(r.end == RunEnd::Finished);
  CHECK(r.steps_done == 6);
  CHECK(r.message.find("already finished") != std::string::npos);
  CHECK(read_file_bytes(dir / "summary.json") == summary);  // never rewritten (with zeros or anything else)
  CHECK(read_file_bytes(dir / "metrics.jsonl") == metrics);
  CHECK(read_json(dir / "summary.json")["final_train_loss"].get<double>() > 0);

  RunOptions longer = tiny_run("finished", 9);
  longer.resume = true;
  longer.resume_changing = {"train.steps"};
  REQUIRE(run_training(std::move(longer)).end == RunEnd::Finished);
  const std::string config = read_file_bytes(dir / "config.toml");
  CHECK(config.find("# resumed") != std::string::npos);
  CHECK(config.find("at step 6, changing train.steps 6 -> 9") != std::string::npos);
  CHECK(config.find("steps = 9") != std::string::npos);
  const auto info = read_json(dir / "run.json");
  REQUIRE(info["resumes"].size() == 1);
  CHECK(info["resumes"][0]["from_step"] == 6);
  CHECK(info["resumes"][0]["changed"]["train.steps"]["to"] == 9);
  CHECK(info["config"]["train"]["steps"] == 6);  // the first start's record stays
  CHECK(test::losses(dir).size() == 9);
  CHECK(read_json(dir / "summary.json")["steps"] == 9);
}

TEST_CASE("resume: a config.toml written with another working directory's relative data.dir still compares equal") {
  REQUIRE(run_training(tiny_run("datadir", 3)).end == RunEnd::Finished);
  const fs::path dir = temp_root() / "runs/datadir";
  Config recorded;
  recorded.apply_file(dir / "config.toml");
  CHECK(fs::path(recorded.string("data.dir")).is_absolute());  // stored resolved
  // Evaluated from another working directory.
  const fs::path cwd = fs::current_path();
  fs::current_path(fs::temp_directory_path());
  RunEvalOptions e;
  e.run_dir = dir;
  e.zero_shot = false;
  e.max_tokens_per_domain = 256;
  const bool ok = evaluate_run(e)["step"] == 3;
  fs::current_path(cwd);
  CHECK(ok);
  // A relative data.dir given now resolves to the recorded one.
  RunOptions relative = tiny_run("datadir", 3);
  relative.resume = true;
  relative.config.set("data.dir", fs::relative(test::tiny_dataset(), fs::current_path()).string());
  CHECK(run_training(std::move(relative)).message.find("already finished") != std::string::npos);
}

// ---- the final checkpoint comes before the final evaluation ----

TEST_CASE("runner: a failed final evaluation keeps the trained steps, and says why in train.log and summary.json") {
  const fs::path data = test::copy_of_tiny_dataset("data_eval_fails");
  const std::string valid = read_file_bytes(data / "valid.bin");
  RunOptions o = tiny_run("eval_fails", 6);
  o.config.set("data.dir", data.string());
  o.before_step = [&](int64_t step, Transformer&) {
    if (step == 5) fs::resize_file(data / "valid.bin", 64);  // the held-out shard breaks during training
  };
  const RunResult r = run_training(std::move(o));
  CHECK(r.end == RunEnd::Failed);
  CHECK(r.steps_done == 6);
  CHECK(r.message.find("trained all 6 steps") != std::string::npos);
  CHECK(r.message.find("final evaluation failed") != std::string::npos);
  CHECK(r.message.find("valid.bin") != std::string::npos);
  REQUIRE(latest_checkpoint(r.dir / "ckpt").has_value());
  CHECK(*latest_checkpoint(r.dir / "ckpt") == r.dir / "ckpt/step_6");
  const auto summary = read_json(r.dir / "summary.json");
  CHECK(summary["end"] == "failed");
  CHECK(summary["steps"] == 6);
  CHECK(summary["eval_error"].get<std::string>().find("valid.bin") != std::string::npos);
  CHECK(summary["final_train_loss"].get<double>() > 0);
  CHECK(log_text(r.dir).find("final evaluation failed") != std::string::npos);

  // With the file back, --resume runs only the evaluation.
  std::ofstream(data / "valid.bin", std::ios::binary | std::ios::trunc) << valid;
  RunOptions again = tiny_run("eval_fails", 6);
  again.config.set("data.dir", data.string());
  again.resume = true;
  const RunResult done = run_training(std::move(again));
  CHECK(done.end == RunEnd::Finished);
  CHECK(test::losses(r.dir).size() == 6);
  const auto after = read_json(r.dir / "summary.json");
  CHECK(after["end"] == "finished");
  CHECK(after["last_eval"]["step"] == 6);
  CHECK(after["final_train_loss"] == summary["final_train_loss"]);
}

// ---- data that changes under a run, and start-time checks ----

TEST_CASE("runner: a train shard truncated during training stops with a clear error and a checkpoint") {
  const fs::path data = test::copy_of_tiny_dataset("data_truncated");
  RunOptions o = tiny_run("truncated", 10);
  o.config.set("data.dir", data.string());
  o.before_step = [&](int64_t step, Transformer&) {
    if (step == 3) fs::resize_file(data / "train.bin", fs::file_size(data / "train.bin") / 2);
  };
  const RunResult r = run_training(std::move(o));  // before: SIGBUS killed the process
  CHECK(r.end == RunEnd::Failed);
  CHECK(r.message.find("step 3") != std::string::npos);
  CHECK(r.message.find("train.bin") != std::string::npos);
  CHECK(r.message.find("changed on disk") != std::string::npos);
  CHECK(latest_checkpoint(r.dir / "ckpt").value() == r.dir / "ckpt/step_3");
  CHECK(read_json(r.dir / "summary.json")["end"] == "failed");
  CHECK(log_text(r.dir).find("changed on disk") != std::string::npos);
}

TEST_CASE("runner: shard and manifest disagreements are found before training") {
  const fs::path data = test::copy_of_tiny_dataset("data_mismatch");
  const std::string manifest = read_file_bytes(data / "dataset.json");
  auto edit_manifest = [&](auto edit) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(manifest);
    edit(j);
    std::ofstream(data / "dataset.json", std::ios::trunc) << j.dump(2);
  };
  auto start = [&](const std::string& name) {
    RunOptions o = tiny_run(name, 2);
    o.config.set("data.dir", data.string());
    return run_training(std::move(o));
  };
  edit_manifest([](auto& j) { j["domains"] = nlohmann::ordered_json::array({"legal"}); });
  CHECK_THROWS_WITH_ALL(start("mismatch_domains"), "domain id 1", "names only 1 domains");
  edit_manifest([](auto& j) { j["vocab_size"] = 600; });
  CHECK_THROWS_WITH_ALL(start("mismatch_vocab"), "train.bin", "vocab_size 512", "vocab_size 600");
  edit_manifest([](auto&) {});
  fs::copy_file(data / "valid.bin", data / "train.bin", fs::copy_options::overwrite_existing);  // swapped shard
  CHECK_THROWS_WITH_ALL(start("mismatch_swap"), "train.bin", "n_tokens", "shards/train/n_tokens");
  CHECK_FALSE(fs::exists(temp_root() / "runs/mismatch_swap/metrics.jsonl"));
}

TEST_CASE("eval: a broken tokenizer is an error before the held-out pass; negative limits are errors") {
  REQUIRE(run_training(tiny_run("eval_checks", 2)).end == RunEnd::Finished);
  RunEvalOptions e;
  e.run_dir = temp_root() / "runs/eval_checks";
  e.max_tokens_per_domain = -1;
  CHECK_THROWS_WITH_ALL(evaluate_run(e), "--max-tokens", ">= 0");
  e.max_tokens_per_domain = 0;
  e.limit = -5;
  CHECK_THROWS_WITH_ALL(evaluate_run(e), "--limit", ">= 0");
  e.limit = 0;
  // Point the run at a copy of the data whose tokenizer is damaged.
  const fs::path data = test::copy_of_tiny_dataset("data_bad_tokenizer");
  const fs::path tok = data / data::load_dataset(data).tokenizer;
  std::ofstream(tok, std::ios::trunc) << "not a tokenizer";
  std::string config = read_file_bytes(e.run_dir / "config.toml");
  const std::string old_dir = "dir = \"" + test::tiny_dataset().string() + "\"";
  REQUIRE(config.find(old_dir) != std::string::npos);
  config.replace(config.find(old_dir), old_dir.size(), "dir = \"" + data.string() + "\"");
  std::ofstream(e.run_dir / "config.toml", std::ios::trunc) << config;
  e.quiet = true;
  const std::string tokenizer_name = tok.filename().string();
  CHECK_THROWS_WITH_ALL(evaluate_run(e), tokenizer_name.c_str());
  CHECK_FALSE(fs::exists(e.run_dir / "eval.json"));
}

TEST_CASE("eval: the automatic checkpoint choice says which one it used and why") {
  RunOptions o = tiny_run("eval_fallback", 8);
  o.config.set("ckpt.interval", int64_t{4});
  REQUIRE(run_training(std::move(o)).end == RunEnd::Finished);
  const fs::path dir = temp_root() / "runs/eval_fallback";
  edit_state(dir / "ckpt/step_8", [](auto& j) { j["lambda_updates"] = "many"; });
  RunEvalOptions e;
  e.run_dir = dir;
  e.zero_shot = false;
  e.quiet = true;
  e.max_tokens_per_domain = 256;
  const auto j = evaluate_run(e);
  CHECK(j["step"] == 4);
  const std::string note = j["checkpoint_note"].get<std::string>();
  CHECK(note.find("using step_4, not the newer step_8") != std::string::npos);
  CHECK(note.find("lambda_updates") != std::string::npos);

  // --resume falls back the same way and says so in train.log.
  RunOptions again = tiny_run("eval_fallback", 8);
  again.config.set("ckpt.interval", int64_t{4});
  again.resume = true;
  REQUIRE(run_training(std::move(again)).end == RunEnd::Finished);
  CHECK(log_text(dir).find("--resume: using step_4, not the newer step_8") != std::string::npos);
  CHECK(log_text(dir).find("resumed from " + (dir / "ckpt/step_4").string()) != std::string::npos);
}

// ---- dead ends ----

TEST_CASE("runner: a run killed before its first checkpoint restarts with --fresh or --resume") {
  auto killed_run = [](const std::string& name) {
    RunOptions o = tiny_run(name, 8);
    o.before_step = [](int64_t step, Transformer&) {
      if (step == 3) throw std::runtime_error("killed");  // leaves what a kill -9 leaves: no checkpoint
    };
    CHECK_THROWS(run_training(std::move(o)));
  };
  killed_run("killed_early");
  CHECK_FALSE(latest_checkpoint(temp_root() / "runs/killed_early/ckpt").has_value());
  CHECK_THROWS_WITH_ALL(run_training(tiny_run("killed_early", 8)), "already holds a run", "--fresh");
  RunOptions fresh = tiny_run("killed_early", 8);
  fresh.fresh = true;
  REQUIRE(run_training(std::move(fresh)).end == RunEnd::Finished);
  CHECK(test::losses(temp_root() / "runs/killed_early").size() == 8);

  killed_run("killed_resume");
  RunOptions resume = tiny_run("killed_resume", 8);
  resume.resume = true;
  REQUIRE(run_training(std::move(resume)).end == RunEnd::Finished);
  CHECK(test::losses(temp_root() / "runs/killed_resume").size() == 8);  // the killed attempt's rows are gone
  CHECK(log_text(temp_root() / "runs/killed_resume").find("starting over from step 0") != std::string::npos);
}

TEST_CASE("runner: SIGHUP stops a run like SIGINT, with a checkpoint") {
  RunOptions o = tiny_run("sighup", 10);
  o.before_step = [](int64_t step, Transformer&) {
    if (step == 4) std::raise(SIGHUP);  // before: the default action killed the process
  };
  const RunResult r = run_training(std::move(o));
  CHECK(r.end == RunEnd::Interrupted);
  CHECK(r.steps_done == 5);
  CHECK(fs::exists(r.dir / "ckpt/step_5/state.json"));
}

TEST_CASE("runner: train.clip = 0 trains without clipping, as --help-config says") {
  RunOptions o = tiny_run("no_clip", 3);
  o.config.set("train.clip", 0.0);
  const RunResult r = run_training(std::move(o));  // before: clip_grad_norm refused max_norm 0 at step 0
  CHECK(r.end == RunEnd::Finished);
  CHECK(test::losses(r.dir).size() == 3);
}
