#include "experiments/config/config.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml.hpp>

#include "core/error.h"

namespace remoe::experiments {
namespace {

using nlohmann::json;

std::string type_name(ValueType t) {
  switch (t) {
    case ValueType::Int: return "integer";
    case ValueType::Float: return "float";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
  }
  return "?";
}

KeySpec str(std::string key, std::string def, std::string help, std::vector<std::string> allowed = {}) {
  return {std::move(key), ValueType::String, def, std::move(help), std::move(allowed), -1e300, 1e300};
}
KeySpec integer(std::string key, int64_t def, std::string help, double min, double max = 1e300) {
  return {std::move(key), ValueType::Int, def, std::move(help), {}, min, max};
}
KeySpec real(std::string key, double def, std::string help, double min, double max = 1e300) {
  return {std::move(key), ValueType::Float, def, std::move(help), {}, min, max};
}
KeySpec boolean(std::string key, bool def, std::string help) {
  return {std::move(key), ValueType::Bool, def, std::move(help), {}, -1e300, 1e300};
}

// Named model sizes: d_model, n_layers, n_heads, n_kv_heads. The three large ones are the paper's
// (spec §3); tiny and small are what 2 CPU cores can train in minutes.
struct Preset {
  const char* name;
  int64_t d_model, n_layers, n_heads, n_kv_heads;
};
constexpr Preset kPresets[] = {
    {"tiny", 128, 4, 4, 4},    {"small", 256, 6, 8, 4},    {"182M", 768, 12, 12, 4},
    {"469M", 1024, 24, 16, 4}, {"978M", 1536, 24, 16, 4},
};

}  // namespace

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = {
      str("run.name", "", "run directory name under run.dir (default: <router>-<preset>-s<seed>)"),
      str("run.dir", "runs", "where run directories are created"),
      integer("run.seed", 1234, "seed of the model init and the data order", 0),
      str("data.dir", "data/demo", "dataset directory written by `remoe data` (holds dataset.json)"),
      str("model.preset", "tiny", "named size; explicit model.* keys override it",
          {"tiny", "small", "182M", "469M", "978M"}),
      integer("model.d_model", 128, "hidden size d", 2),
      integer("model.n_layers", 4, "transformer blocks", 1),
      integer("model.n_heads", 4, "attention heads", 1),
      integer("model.n_kv_heads", 4, "key/value heads (GQA groups)", 1),
      integer("model.seq_len", 256, "training context length", 2),
      real("model.rope_base", 1e6, "RoPE base", 1.0),
      integer("model.ffn_hidden", 0, "width of one G=1 expert / dense FFN; 0 = 4·d_model", 0),
      integer("model.dense_multiplier", 1, "dense×M baseline: intermediate width multiplied by M", 1),
      str("moe.router", "relu", "the router (models/router_registry.cpp; docs/routers.md)", router_names()),
      integer("moe.num_experts", 8, "E", 1),
      integer("moe.topk", 1, "k (TopK) / the target 1 − k/E (ReMoE)", 1),
      integer("moe.granularity", 1, "G: E·G experts of width d_ffn/G, k·G active", 1),
      real("moe.aux_loss_coeff", 0.01, "TopK load-balancing loss coefficient", 0.0),
      real("moe.l1_coeff_init", 1e-8, "ReMoE λ0", 0.0),
      real("moe.l1_coeff_multiplier", 1.2, "ReMoE α (λ ← λ·α^sign(target − S))", 1.0),
      boolean("moe.load_balanced_l1", true, "ReMoE L1 with load balancing (Eq. 10–11) or plain (Eq. 9)"),
      boolean("moe.l1_sum_over_layers", false, "ReMoE: L_reg summed over layers without the 1/L of Eq. 10 (reference code)"),
      integer("moe.topk_warmup_k", 0, "TopK: k during the first moe.topk_warmup_steps steps (paper: 6); 0 = no warm-up", 0),
      integer("moe.topk_warmup_steps", 0, "TopK: steps of the near-dense warm-up (paper: 100)", 0),
      boolean("moe.topk_renormalize", false, "TopK: gates renormalised over the chosen k (Mixtral/DeepSeek; k = 1 gives gate 1)"),
      real("moe.sparsemixer_eps", 0.01, "SparseMixer-v2: jitter ε of the candidate mask (GRIN)", 0.0, 1.0),
      integer("moe.lory_segment", 64, "Lory: segment length in tokens (paper 256 of 1024-token contexts)", 1),
      integer("train.steps", 1000, "optimizer steps", 1),
      integer("train.batch_size", 16, "sequences per micro-batch", 1),
      integer("train.micro_batches", 1, "micro-batches accumulated per step", 1),
      real("train.lr", 5e-4, "peak learning rate", 0.0, 10.0),
      real("train.min_lr", 5e-5, "final learning rate of the cosine decay", 0.0, 10.0),
      integer("train.warmup_steps", -1, "linear warm-up steps; -1 = 1% of train.steps", -1),
      real("train.weight_decay", 0.01, "AdamW decoupled weight decay (2-D weights only)", 0.0),
      real("train.clip", 1.0, "global grad-norm clip; 0 = off", 0.0),
      str("train.precision", "f32", "GEMM inputs: f32, or bf16 (rounded to bfloat16, f32 sums; oneDNN on AVX512-BF16 CPUs, else f32 with a message)", {"f32", "bf16"}),
      boolean("train.deterministic", true, "--resume refuses another thread count or mpirun process count (reductions split per thread / rank; same counts = same bytes)"),
      integer("log.interval", 10, "steps between status lines / metrics rows", 1),
      integer("eval.interval", 200, "steps between held-out evaluations; 0 = only at the end", 0),
      integer("eval.max_tokens", 32768, "held-out tokens per domain per evaluation", 1),
      integer("ckpt.interval", 200, "steps between checkpoints; 0 = only at the end", 0),
      integer("ckpt.keep", 2, "checkpoints kept (older ones are deleted)", 1),
      str("system.device", "auto", "cpu, cuda, or auto (cuda when built and present)", {"auto", "cpu", "cuda"}),
      integer("system.threads", 0, "CPU threads; 0 = OpenMP's default", 0),
      integer("dist.expert_parallel", 1, "P: under mpirun, each MoE layer's experts split over groups of P ranks (world = DP × P)", 1),
  };
  return schema;
}

Config::Config() {
  for (const KeySpec& s : config_schema()) values_[s.key] = s.default_value;
}

const KeySpec& Config::spec(const std::string& key) const {
  for (const KeySpec& s : config_schema())
    if (s.key == key) return s;
  // Suggest keys of the same section so that typos are easy to fix.
  std::string section = key.substr(0, key.find('.')), same;
  for (const KeySpec& s : config_schema())
    if (s.key.rfind(section + ".", 0) == 0) same += " " + s.key;
  fail("config: unknown key '", key, "'", same.empty() ? std::string(" (see `remoe train --help-config`)")
                                                       : " (keys of [" + section + "]:" + same + ")");
}

void Config::set(const std::string& key, const json& value) {
  const KeySpec& s = spec(key);
  json v = value;
  switch (s.type) {
    case ValueType::Int:
      // JSON integers beyond int64 arrive as unsigned (up to 2^64) or as floats (beyond): both are
      // errors, never a wrapped or clamped value.
      REMOE_CHECK(!(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) &&
                      !(v.is_number_float() && std::abs(v.get<double>()) >= 9.2233720368547758e18),
                  "config: ", key, " = ", value.dump(), " does not fit a 64-bit integer");
      if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) v = static_cast<int64_t>(v.get<double>());
      REMOE_CHECK(v.is_number_integer(), "config: ", key, " must be an integer, got ", value.dump());
      break;
    case ValueType::Float:
      REMOE_CHECK(v.is_number(), "config: ", key, " must be a number, got ", value.dump());
      v = v.get<double>();
      break;
    case ValueType::Bool:
      REMOE_CHECK(v.is_boolean(), "config: ", key, " must be true or false, got ", value.dump());
      break;
    case ValueType::String:
      REMOE_CHECK(v.is_string(), "config: ", key, " must be a string, got ", value.dump());
      break;
  }
  if (s.type == ValueType::Int || s.type == ValueType::Float) {
    const double x = v.get<double>();
    REMOE_CHECK(std::isfinite(x) && x >= s.min && x <= s.max, "config: ", key, " = ", v.dump(), " is out of range [",
                s.min, ", ", s.max > 1e299 ? std::string("inf") : std::to_string(s.max), "]");
  }
  if (s.type == ValueType::String && !s.allowed.empty()) {
    bool ok = false;
    std::string list;
    for (const std::string& a : s.allowed) {
      ok = ok || a == v.get<std::string>();
      list += (list.empty() ? "" : ", ") + a;
    }
    REMOE_CHECK(ok, "config: ", key, " = '", v.get<std::string>(), "' is not one of: ", list);
  }
  values_[key] = v;
  explicit_[key] = true;
}

void Config::set_from_string(const std::string& key, const std::string& text) {
  const KeySpec& s = spec(key);
  json v;
  try {
    size_t used = 0;
    switch (s.type) {
      case ValueType::Int: v = static_cast<int64_t>(std::stoll(text, &used)); break;
      case ValueType::Float: v = std::stod(text, &used); break;
      case ValueType::Bool:
        REMOE_CHECK(text == "true" || text == "false", "config: ", key, " must be true or false, got '", text, "'");
        v = text == "true";
        used = text.size();
        break;
      case ValueType::String: v = text; used = text.size(); break;
    }
    REMOE_CHECK(used == text.size(), "config: ", key, " must be ", type_name(s.type), ", got '", text, "'");
  } catch (const std::out_of_range&) {
    fail("config: ", key, " = ", text, s.type == ValueType::Int ? " does not fit a 64-bit integer" : " is out of range");
  } catch (const std::invalid_argument&) {
    fail("config: ", key, " must be ", type_name(s.type), ", got '", text, "'");
  }
  set(key, v);
}

namespace {

// toml11 3.7 reads integers with `istream >> int64`, which clamps an overflowing literal to
// INT64_MAX / INT64_MIN without a word: re-read the literal's source text when the value is at a
// limit, and refuse it if it does not fit.
void check_toml_integer_fits(const toml::value& v, const std::string& where) {
  const int64_t x = v.as_integer();
  if (x != INT64_MAX && x != INT64_MIN) return;
  const toml::source_location loc = v.location();
  const std::string line = loc.line_str();
  const size_t begin = loc.column() > 0 ? loc.column() - 1 : 0;
  std::string literal = begin < line.size() ? line.substr(begin, loc.region()) : "";
  std::erase(literal, '_');
  const bool negative = !literal.empty() && literal[0] == '-';
  std::string digits = literal.substr(!literal.empty() && (literal[0] == '-' || literal[0] == '+') ? 1 : 0);
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o' || digits[1] == 'b')) {
    base = digits[1] == 'x' ? 16 : digits[1] == 'o' ? 8 : 2;
    digits = digits.substr(2);
  }
  uint64_t magnitude = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  const uint64_t limit = negative ? static_cast<uint64_t>(INT64_MAX) + 1 : static_cast<uint64_t>(INT64_MAX);
  REMOE_CHECK(ec != std::errc::result_out_of_range && magnitude <= limit, "config: ", where, " = ", literal,
              " does not fit a 64-bit integer");
}

json toml_to_json(const toml::value& v, const std::string& where) {
  if (v.is_boolean()) return v.as_boolean();
  if (v.is_integer()) {
    check_toml_integer_fits(v, where);
    return static_cast<int64_t>(v.as_integer());
  }
  if (v.is_floating()) return v.as_floating();
  if (v.is_string()) return v.as_string().str;
  fail("config: ", where, " has a value type the config does not use (arrays, tables and dates are not keys)");
}

}  // namespace

void Config::apply_file(const std::filesystem::path& path) {
  REMOE_CHECK(std::filesystem::exists(path), "config: file not found: ", path.string());
  std::vector<std::pair<std::string, json>> flat;
  if (path.extension() == ".json") {
    std::ifstream in(path);
    json doc;
    try {
      doc = json::parse(in);
    } catch (const json::exception& e) {
      fail("config: ", path.string(), " is not valid JSON: ", e.what());
    }
    REMOE_CHECK(doc.is_object(), "config: ", path.string(), " must hold an object of sections");
    for (auto& [section, table] : doc.items()) {
      REMOE_CHECK(table.is_object(), "config: ", path.string(), ": '", section, "' must be a section ({...})");
      for (auto& [key, value] : table.items()) flat.emplace_back(section + "." + key, value);
    }
  } else {
    toml::value doc;
    try {
      doc = toml::parse(path.string());
    } catch (const std::exception& e) {
      fail("config: ", path.string(), " is not valid TOML: ", e.what());
    }
    for (const auto& [section, table] : doc.as_table()) {
      REMOE_CHECK(table.is_table(), "config: ", path.string(), ": '", section, "' must be a [section]");
      for (const auto& [key, value] : table.as_table())
        flat.emplace_back(section + "." + key, toml_to_json(value, section + "." + key));
    }
  }
  // model.preset first, so that explicit sizes in the same file override it.
  for (auto& [key, value] : flat)
    if (key == "model.preset") set(key, value);
  for (auto& [key, value] : flat)
    if (key != "model.preset") set(key, value);
}

void Config::apply_overrides(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    REMOE_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "config: unexpected argument '", a,
                "' (overrides look like --section.key=value)");
    std::string body = a.substr(2), key, value;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      key = body.substr(0, eq);
      value = body.substr(eq + 1);
    } else {
      REMOE_CHECK(i + 1 < args.size(), "config: --", body, " needs a value");
      key = body;
      value = args[++i];
    }
    REMOE_CHECK(key.find('.') != std::string::npos, "config: unknown option --", key,
                " (config overrides look like --section.key=value)");
    set_from_string(key, value);
  }
}

int64_t Config::integer(const std::string& key) const { return values_.at(spec(key).key).get<int64_t>(); }
double Config::real(const std::string& key) const { return values_.at(spec(key).key).get<double>(); }
bool Config::boolean(const std::string& key) const { return values_.at(spec(key).key).get<bool>(); }
const std::string& Config::string(const std::string& key) const {
  return values_.at(spec(key).key).get_ref<const std::string&>();
}

void Config::finalize() {
  const std::string& preset = string("model.preset");
  for (const Preset& p : kPresets) {
    if (preset != p.name) continue;
    const std::pair<const char*, int64_t> sizes[] = {{"model.d_model", p.d_model},
                                                     {"model.n_layers", p.n_layers},
                                                     {"model.n_heads", p.n_heads},
                                                     {"model.n_kv_heads", p.n_kv_heads}};
    for (auto [key, value] : sizes)
      if (!is_explicit(key)) values_[key] = value;
  }
  if (string("run.name").empty()) {
    values_["run.name"] = string("moe.router") + "-" + preset + "-s" + std::to_string(integer("run.seed"));
  }
  // The run directory is run.dir/run.name: a name with a '/' or a '..' would put it elsewhere.
  const std::string& name = string("run.name");
  REMOE_CHECK(name != "." && name != ".." && name.find('/') == std::string::npos, "config: run.name = '", name,
              "' must be a plain directory name inside run.dir (no '/', not '.' or '..')");
  REMOE_CHECK(real("train.min_lr") <= real("train.lr"), "config: train.min_lr = ", real("train.min_lr"),
              " must be <= train.lr = ", real("train.lr"));
  REMOE_CHECK(integer("train.warmup_steps") <= integer("train.steps"), "config: train.warmup_steps = ",
              integer("train.warmup_steps"), " must be <= train.steps = ", integer("train.steps"));
  model_config(256).validate();  // names the offending key
}

ModelConfig Config::model_config(int64_t vocab_size) const {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.d_model = integer("model.d_model");
  c.n_layers = integer("model.n_layers");
  c.n_heads = integer("model.n_heads");
  c.n_kv_heads = integer("model.n_kv_heads");
  c.rope_base = real("model.rope_base");
  c.ffn = string("moe.router");
  c.num_experts = integer("moe.num_experts");
  c.topk = integer("moe.topk");
  c.granularity = integer("moe.granularity");
  c.ffn_hidden = integer("model.ffn_hidden");
  c.dense_multiplier = integer("model.dense_multiplier");
  c.aux_loss_coeff = real("moe.aux_loss_coeff");
  c.l1_load_balanced = boolean("moe.load_balanced_l1");
  c.l1_sum_over_layers = boolean("moe.l1_sum_over_layers");
  c.topk_warmup_k = integer("moe.topk_warmup_k");
  c.topk_warmup_steps = integer("moe.topk_warmup_steps");
  c.topk_renormalize = boolean("moe.topk_renormalize");
  c.sparsemixer_eps = real("moe.sparsemixer_eps");
  c.lory_segment = integer("moe.lory_segment");
  c.seed = static_cast<uint64_t>(integer("run.seed"));
  return c;
}

nlohmann::ordered_json Config::to_json() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const KeySpec& s : config_schema()) {
    const std::string section = s.key.substr(0, s.key.find('.')), name = s.key.substr(s.key.find('.') + 1);
    out[section][name] = values_.at(s.key);
  }
  return out;
}

std::string Config::to_toml() const {
  std::ostringstream os;
  std::string current;
  for (const KeySpec& s : config_schema()) {
    const std::string section = s.key.substr(0, s.key.find('.')), name = s.key.substr(s.key.find('.') + 1);
    if (section != current) {
      os << (current.empty() ? "" : "\n") << "[" << section << "]\n";
      current = section;
    }
    const json& v = values_.at(s.key);
    os << name << " = ";
    if (s.type == ValueType::Float) {
      std::ostringstream num;
      num.precision(17);
      num << v.get<double>();
      std::string text = num.str();
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // TOML floats need a '.' or exponent
      os << text;
    } else {
      os << v.dump();
    }
    os << "\n";
  }
  return os.str();
}

std::string describe_schema() {
  std::ostringstream os;
  for (const KeySpec& s : config_schema()) {
    os << "  " << s.key << " (" << type_name(s.type) << ", default " << s.default_value.dump() << ")";
    if (!s.allowed.empty()) {
      os << " one of:";
      for (const std::string& a : s.allowed) os << " " << a;
    }
    os << "\n      " << s.help << "\n";
  }
  return os.str();
}

}  // namespace remoe::experiments
