#include "experiments/train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <tuple>

#include "core/error.h"
#include "core/safetensors.h"
#include "experiments/data/hash.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr const char* kFiles[] = {"model.safetensors", "optimizer.safetensors"};
constexpr const char* kTempPrefix = ".tmp-step_";   // a save in progress
constexpr const char* kAsidePrefix = ".old-step_";  // the old copy during a re-save

// Digits only -> the number; anything else (or too many digits) -> -1.
int64_t parse_count(const std::string& digits) {
  if (digits.empty() || digits.size() > 18) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  return std::stoll(digits);
}

// step_<N> -> N, or -1 for anything else (temp dirs, stray files).
int64_t step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind("step_", 0) != 0) return -1;
  return parse_count(name.substr(5));
}

// A leftover of an interrupted save: `<prefix><N>-<pid>`.
struct Leftover {
  fs::path path;
  int64_t step = -1, pid = -1;
  bool aside = false;  // .old-step_ (else .tmp-step_)
};

std::optional<Leftover> parse_leftover(const fs::path& path) {
  const std::string name = path.filename().string();
  for (const char* prefix : {kTempPrefix, kAsidePrefix}) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(std::strlen(prefix));
    const auto dash = rest.find('-');
    if (dash == std::string::npos) return std::nullopt;
    Leftover l{path, parse_count(rest.substr(0, dash)), parse_count(rest.substr(dash + 1)), prefix == kAsidePrefix};
    if (l.step < 0 || l.pid < 0) return std::nullopt;
    return l;
  }
  return std::nullopt;
}

bool process_alive(int64_t pid) {
  if (pid == ::getpid()) return false;  // our own leftovers are from an earlier, failed save
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
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

// Flushes a file's (or a directory's entries') data to the disk, so that a rename that follows
// cannot be persisted before the data it names (power loss, not only kill).
void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  REMOE_CHECK(fd >= 0, "checkpoint: cannot open ", path.string(), " to fsync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  REMOE_CHECK(rc == 0, "checkpoint: fsync of ", path.string(), " failed: ", std::strerror(err));
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  REMOE_CHECK(out, "checkpoint: cannot write ", path.string());
}

// REMOE_CKPT_FAULT=<stage>: stop the save right after `stage`, as a kill there would.
void fault_point(const char* stage) {
  const char* wanted = std::getenv("REMOE_CKPT_FAULT");
  if (wanted && std::strcmp(wanted, stage) == 0)
    fail("checkpoint: save stopped after ", stage, " (fault injected by REMOE_CKPT_FAULT)");
}

// ---- state.json as data: each field's presence and type, naming the file and the field ----

const ordered_json& field(const ordered_json& j, const std::string& name, const fs::path& file) {
  REMOE_CHECK(j.is_object() && j.contains(name), "checkpoint: ", file.string(), ": missing field \"", name, "\"");
  return j[name];
}

int64_t count_field(const ordered_json& j, const std::string& name, const fs::path& file) {
  const ordered_json& v = field(j, name, file);
  REMOE_CHECK(v.is_number_integer() && (v.is_number_unsigned() || v.get<int64_t>() >= 0) &&
                  !(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)),
              "checkpoint: ", file.string(), ": field \"", name, "\" must be an integer >= 0, got ", v.dump());
  return v.get<int64_t>();
}

double finite_field(const ordered_json& j, const std::string& name, const fs::path& file) {
  const ordered_json& v = field(j, name, file);
  REMOE_CHECK(v.is_number() && std::isfinite(v.get<double>()), "checkpoint: ", file.string(), ": field \"", name,
              "\" must be a finite number, got ", v.dump());
  return v.get<double>();
}

TrainState parse_state(const ordered_json& j, const fs::path& file) {
  REMOE_CHECK(j.is_object(), "checkpoint: ", file.string(), " must hold a JSON object");
  REMOE_CHECK(field(j, "format", file) == "remoe-checkpoint", "checkpoint: ", file.string(),
              ": field \"format\" is ", j["format"].dump(), ", not \"remoe-checkpoint\"");
  REMOE_CHECK(field(j, "version", file) == 1, "checkpoint: ", file.string(), ": unsupported \"version\" ",
              j["version"].dump(), " (expected 1)");
  TrainState s;
  s.step = count_field(j, "step", file);
  s.controller.lambda = finite_field(j, "lambda", file);
  s.controller.updates = count_field(j, "lambda_updates", file);
  const ordered_json& seed = field(j, "data_seed", file);
  REMOE_CHECK(seed.is_number_unsigned(), "checkpoint: ", file.string(),
              ": field \"data_seed\" must be an integer >= 0, got ", seed.dump());
  s.data_seed = seed.get<uint64_t>();
  s.extra = j.contains("extra") ? j["extra"] : ordered_json::object();
  REMOE_CHECK(s.extra.is_object(), "checkpoint: ", file.string(), ": field \"extra\" must be an object, got ",
              s.extra.dump());
  if (s.extra.contains("threads"))
    REMOE_CHECK(s.extra["threads"].is_number_integer(), "checkpoint: ", file.string(),
                ": field \"extra.threads\" must be an integer, got ", s.extra["threads"].dump());
  const ordered_json& files = field(j, "files", file);
  for (const char* f : kFiles) {
    const ordered_json& entry = field(files, f, file);
    count_field(entry, "bytes", file.string() + " files." + f);
    const ordered_json& hash = field(entry, "fnv1a64", file.string() + " files." + f);
    REMOE_CHECK(hash.is_string(), "checkpoint: ", file.string(), ": field \"files.", f,
                ".fnv1a64\" must be a string, got ", hash.dump());
  }
  return s;
}

// The step a checkpoint directory's name claims (step_<N>, or a leftover's <N>), or -1.
int64_t claimed_step(const fs::path& dir) {
  if (auto l = parse_leftover(dir)) return l->step;
  return step_of(dir);
}

// Copies `source` into the named tensors of `target`: same names, dtypes and shapes, finite values.
void copy_named(const std::string& what, const NamedTensors& target, const std::map<std::string, Tensor>& source) {
  std::set<std::string> expected;
  for (const auto& [name, t] : target) {
    expected.insert(name);
    auto it = source.find(name);
    REMOE_CHECK(it != source.end(), "checkpoint: ", what, " has no tensor '", name, "'");
    const Tensor& s = it->second;
    REMOE_CHECK(s.dtype() == t.dtype(), "checkpoint: ", what, " tensor '", name, "' has dtype ", dtype_name(s.dtype()),
                ", the model's is ", dtype_name(t.dtype()));
    REMOE_CHECK(s.shape() == t.shape(), "checkpoint: ", what, " tensor '", name, "' has shape ", shape_str(s.shape()),
                ", the model's is ", shape_str(t.shape()));
    if (is_floating(s.dtype())) {
      const std::vector<double> values = s.to(DType::f64).to_vector<double>();
      const auto bad = std::find_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); });
      REMOE_CHECK(bad == values.end(), "checkpoint: ", what, " tensor '", name, "' holds a non-finite value (", *bad,
                  " at element ", bad - values.begin(), "): refusing to load it");
    }
  }
  for (const auto& [name, t] : source)
    REMOE_CHECK(expected.count(name), "checkpoint: ", what, " has a tensor '", name, "' the model does not have");
  NoGradGuard no_grad;
  for (const auto& [name, t] : target) copy_(t, source.at(name));
}

ordered_json state_json(const fs::path& dir, const TrainState& state) {
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
    j["files"][f]["bytes"] = fs::file_size(dir / f);
    j["files"][f]["fnv1a64"] = data::hex64(data::fnv1a64_file(dir / f));
  }
  return j;
}

// Writes the three files into `tmp`, each fsynced, then the directory.
void write_checkpoint_files(const fs::path& tmp, const Module& model, const AdamW& optimizer, const TrainState& state) {
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_safetensors((tmp / kFiles[0]).string(), model.named_parameters());
  fsync_path(tmp / kFiles[0], false);
  fault_point(kFiles[0]);
  save_safetensors((tmp / kFiles[1]).string(), optimizer.state_tensors());
  fsync_path(tmp / kFiles[1], false);
  fault_point(kFiles[1]);
  write_file(tmp / "state.json", state_json(tmp, state).dump(2) + "\n");  // last: it vouches for the others
  fsync_path(tmp / "state.json", false);
  fsync_path(tmp, true);
  fault_point("state.json");
}

}  // namespace

fs::path save_checkpoint(const fs::path& ckpt_root, const Module& model, const AdamW& optimizer,
                         const TrainState& state) {
  fs::create_directories(ckpt_root);
  const std::string name = "step_" + std::to_string(state.step), pid = std::to_string(::getpid());
  const fs::path tmp = ckpt_root / (kTempPrefix + std::to_string(state.step) + "-" + pid);
  const fs::path aside = ckpt_root / (kAsidePrefix + std::to_string(state.step) + "-" + pid);
  const fs::path final_dir = ckpt_root / name;
  write_checkpoint_files(tmp, model, optimizer, state);

  // Re-saving a step: the complete old copy moves aside and is deleted only after the new one is
  // in place, so a kill between any two of these leaves one complete copy (recover_checkpoints).
  const bool replacing = fs::exists(final_dir);
  if (replacing) {
    fs::remove_all(aside);
    fs::rename(final_dir, aside);
    fault_point("aside");
  }
  fs::rename(tmp, final_dir);
  fsync_path(ckpt_root, true);
  fault_point("swap");
  if (replacing) fs::remove_all(aside);
  return final_dir;
}

std::optional<std::string> verify_checkpoint(const fs::path& dir) {
  const fs::path state_file = dir / "state.json";
  if (!fs::exists(state_file)) return "no state.json";
  ordered_json j;
  TrainState state;
  try {
    j = read_json(state_file);
    state = parse_state(j, state_file);
  } catch (const Error& e) {
    return std::string(e.what());
  }
  const int64_t claimed = claimed_step(dir);
  if (claimed >= 0 && claimed != state.step)
    return "state.json says step " + std::to_string(state.step) + " but the directory is named for step " +
           std::to_string(claimed);
  for (const char* f : kFiles) {
    if (!fs::exists(dir / f)) return std::string("missing ") + f;
    if (fs::file_size(dir / f) != j["files"][f]["bytes"].get<uint64_t>()) return std::string(f) + " has the wrong size";
    if (data::hex64(data::fnv1a64_file(dir / f)) != j["files"][f]["fnv1a64"].get<std::string>())
      return std::string(f) + " fails its checksum";
  }
  return std::nullopt;
}

TrainState load_checkpoint(const fs::path& dir, Module& model, AdamW* optimizer) {
  if (auto problem = verify_checkpoint(dir)) fail("checkpoint ", dir.string(), " is not usable: ", *problem);
  const TrainState s = parse_state(read_json(dir / "state.json"), dir / "state.json");
  copy_named((dir / kFiles[0]).string(), model.named_parameters(), load_safetensors((dir / kFiles[0]).string()));
  if (optimizer) {
    const std::map<std::string, Tensor> loaded = load_safetensors((dir / kFiles[1]).string());
    // Checked against the optimizer's own state (names, dtypes, shapes, finite) before it is touched.
    NamedTensors current = optimizer->state_tensors();
    for (auto& [name, t] : current) t = zeros_like(t);  // targets for the check only
    copy_named((dir / kFiles[1]).string(), current, loaded);
    optimizer->load_state(NamedTensors(loaded.begin(), loaded.end()));
  }
  return s;
}

namespace {
std::vector<std::pair<int64_t, fs::path>> step_dirs(const fs::path& ckpt_root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (!fs::is_directory(ckpt_root)) return found;
  for (const auto& entry : fs::directory_iterator(ckpt_root)) {
    const int64_t step = step_of(entry.path());
    if (step >= 0 && entry.is_directory()) found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}
}  // namespace

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& ckpt_root) {
  auto found = step_dirs(ckpt_root);
  std::erase_if(found, [](const auto& s) { return verify_checkpoint(s.second).has_value(); });
  return found;
}

std::string CheckpointChoice::fallback_note() const {
  if (skipped.empty()) return "";
  std::string note = chosen ? "using " + chosen->filename().string() + ", not the newer " : "no usable checkpoint: ";
  for (size_t i = 0; i < skipped.size(); ++i) note += (i ? "; " : "") + skipped[i];
  return note;
}

CheckpointChoice choose_checkpoint(const fs::path& ckpt_root, int64_t max_step) {
  CheckpointChoice choice;
  auto found = step_dirs(ckpt_root);
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    const std::string name = it->second.filename().string();
    if (it->first > max_step) {
      choice.skipped.push_back(name + ": its step is beyond the run's train.steps = " + std::to_string(max_step));
    } else if (auto problem = verify_checkpoint(it->second)) {
      choice.skipped.push_back(name + ": " + *problem);
    } else {
      choice.chosen = it->second;
      break;
    }
  }
  return choice;
}

std::optional<fs::path> latest_checkpoint(const fs::path& ckpt_root) { return choose_checkpoint(ckpt_root).chosen; }

std::vector<std::string> recover_checkpoints(const fs::path& ckpt_root) {
  std::vector<Leftover> leftovers;
  if (fs::is_directory(ckpt_root))
    for (const auto& entry : fs::directory_iterator(ckpt_root))
      if (auto l = parse_leftover(entry.path()); l && entry.is_directory()) leftovers.push_back(*l);
  // Temp copies first: when both survive a re-save, the temp one is the newer save.
  std::sort(leftovers.begin(), leftovers.end(), [](const Leftover& a, const Leftover& b) {
    return std::tie(a.aside, a.step, a.path) < std::tie(b.aside, b.step, b.path);
  });
  std::vector<std::string> actions;
  for (const Leftover& l : leftovers) {
    const std::string name = l.path.filename().string();
    if (process_alive(l.pid)) {
      actions.push_back("left " + name + " alone: its writer, process " + std::to_string(l.pid) + ", is alive");
      continue;
    }
    const fs::path target = ckpt_root / ("step_" + std::to_string(l.step));
    const auto problem = verify_checkpoint(l.path);
    const bool target_ok = fs::exists(target) && !verify_checkpoint(target);
    if (!problem && !target_ok) {
      fs::remove_all(target);
      fs::rename(l.path, target);
      fsync_path(ckpt_root, true);
      actions.push_back("restored " + target.filename().string() + " from " + name + " (complete; process " +
                        std::to_string(l.pid) + " died before " + (l.aside ? "its re-save finished)" : "renaming it)"));
    } else {
      fs::remove_all(l.path);
      actions.push_back("removed " + name + " of dead process " + std::to_string(l.pid) +
                        (problem ? " (incomplete: " + *problem + ")" : " (complete, but " + target.filename().string() +
                                                                         " exists and verifies)"));
    }
  }
  return actions;
}

void prune_checkpoints(const fs::path& ckpt_root, int64_t keep) {
  auto found = complete_checkpoints(ckpt_root);
  for (size_t i = 0; i + static_cast<size_t>(keep) < found.size(); ++i) fs::remove_all(found[i].second);
}

}  // namespace remoe::experiments
