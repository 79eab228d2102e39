#include "experiments/train/checkpoint.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <unistd.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "experiments/data/hash.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr const char* kFiles[] = {"model.safetensors", "optimizer.safetensors"};

// step_<N> -> N, or -1 for anything else (temp dirs, stray files).
int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("step_", 0) != 0 || name.size() == 5) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

ordered_json read_json(const fs::path& path) {
  std::ifstream in(path);
  REMOE_CHECK(in, "checkpoint: cannot open ", path.string());
  try {
    return ordered_json::parse(in);
  } catch (const std::exception& e) {
    fail("checkpoint: ", path.string(), " is not valid JSON: ", e.what());
  }
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  REMOE_CHECK(out, "checkpoint: cannot write ", path.string());
}

// Copies `source` into the named tensors of `target` (same names, same shapes).
void copy_named(const std::string& what, const NamedTensors& target, const std::map<std::string, Tensor>& source) {
  std::set<std::string> expected;
  for (const auto& [name, t] : target) {
    expected.insert(name);
    auto it = source.find(name);
    REMOE_CHECK(it != source.end(), "checkpoint: ", what, " has no tensor '", name, "'");
    REMOE_CHECK(it->second.shape() == t.shape(), "checkpoint: ", what, " tensor '", name, "' has shape ",
                shape_str(it->second.shape()), ", the model's is ", shape_str(t.shape()));
  }
  for (const auto& [name, t] : source)
    REMOE_CHECK(expected.count(name), "checkpoint: ", what, " has a tensor '", name, "' the model does not have");
  NoGradGuard no_grad;
  for (const auto& [name, t] : target) copy_(t, source.at(name));
}

}  // namespace

fs::path save_checkpoint(const fs::path& ckpt_root, const Module& model, const AdamW& optimizer,
                         const TrainState& state) {
  fs::create_directories(ckpt_root);
  const std::string name = "step_" + std::to_string(state.step);
  const fs::path tmp = ckpt_root / (".tmp-" + name + "-" + std::to_string(::getpid()));
  const fs::path final_dir = ckpt_root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  save_safetensors((tmp / kFiles[0]).string(), model.named_parameters());
  save_safetensors((tmp / kFiles[1]).string(), optimizer.state_tensors());

  ordered_json j;
  j["format"] = "remoe-checkpoint";
  j["version"] = 1;
  j["step"] = state.step;
  j["lambda"] = state.controller.lambda;
  j["lambda_updates"] = state.controller.updates;
  j["data_seed"] = state.data_seed;
  j["data_cursor"] = state.step;  // batches are a pure function of (seed, step): see BatchSampler
  j["extra"] = state.extra.is_null() ? ordered_json::object() : state.extra;
  for (const char* f : kFiles) {
    j["files"][f]["bytes"] = fs::file_size(tmp / f);
    j["files"][f]["fnv1a64"] = data::hex64(data::fnv1a64_file(tmp / f));
  }
  write_file(tmp / "state.json", j.dump(2) + "\n");

  // Replace an existing checkpoint of the same step (a re-run) only once the new one is complete.
  if (fs::exists(final_dir)) fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  return final_dir;
}

std::optional<std::string> verify_checkpoint(const fs::path& dir) {
  if (!fs::exists(dir / "state.json")) return "no state.json";
  ordered_json j;
  try {
    j = read_json(dir / "state.json");
  } catch (const Error& e) {
    return std::string(e.what());
  }
  if (j.value("format", "") != "remoe-checkpoint") return "state.json is not a remoe checkpoint";
  for (const char* f : kFiles) {
    if (!j.contains("files") || !j["files"].contains(f)) return std::string("state.json lists no ") + f;
    if (!fs::exists(dir / f)) return std::string("missing ") + f;
    if (fs::file_size(dir / f) != j["files"][f]["bytes"].get<uint64_t>()) return std::string(f) + " has the wrong size";
    if (data::hex64(data::fnv1a64_file(dir / f)) != j["files"][f]["fnv1a64"].get<std::string>())
      return std::string(f) + " fails its checksum";
  }
  return std::nullopt;
}

TrainState load_checkpoint(const fs::path& dir, Module& model, AdamW* optimizer) {
  if (auto problem = verify_checkpoint(dir)) fail("checkpoint ", dir.string(), " is not usable: ", *problem);
  ordered_json j = read_json(dir / "state.json");
  copy_named((dir / kFiles[0]).string(), model.named_parameters(), load_safetensors((dir / kFiles[0]).string()));
  if (optimizer) {
    std::map<std::string, Tensor> loaded = load_safetensors((dir / kFiles[1]).string());
    NamedTensors state(loaded.begin(), loaded.end());
    optimizer->load_state(state);
  }
  TrainState s;
  s.step = j.at("step").get<int64_t>();
  s.controller.lambda = j.at("lambda").get<double>();
  s.controller.updates = j.at("lambda_updates").get<int64_t>();
  s.data_seed = j.at("data_seed").get<uint64_t>();
  s.extra = j.value("extra", ordered_json::object());
  return s;
}

namespace {
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& ckpt_root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (!fs::is_directory(ckpt_root)) return found;
  for (const auto& entry : fs::directory_iterator(ckpt_root)) {
    const int64_t step = step_of(entry.path());
    if (step >= 0 && entry.is_directory() && !verify_checkpoint(entry.path())) found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}
}  // namespace

std::optional<fs::path> latest_checkpoint(const fs::path& ckpt_root) {
  auto found = complete_checkpoints(ckpt_root);
  if (found.empty()) return std::nullopt;
  return found.back().second;
}

void prune_checkpoints(const fs::path& ckpt_root, int64_t keep) {
  auto found = complete_checkpoints(ckpt_root);
  for (size_t i = 0; i + static_cast<size_t>(keep) < found.size(); ++i) fs::remove_all(found[i].second);
}

}  // namespace remoe::experiments
