// Run configuration: a flat table of `section.key` values with a schema (type, default, allowed
// values or range, help). Sources are applied in order — schema defaults, a model preset, a config
// file (TOML via toml11, or JSON), then `--section.key=value` overrides — and every value is
// checked: an unknown key, a wrong type or an out-of-range value is an error naming the key and
// what is allowed. The resolved table is written to the run directory as config.toml / JSON.
//
// Keys mirror the paper's Megatron flags where they exist (moe.num_experts, moe.router,
// moe.topk, moe.aux_loss_coeff, moe.l1_coeff_init = λ0, moe.l1_coeff_multiplier = α,
// moe.granularity). `remoe train --help-config` prints the table.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/transformer.h"

namespace remoe::experiments {

enum class ValueType { Int, Float, Bool, String };

struct KeySpec {
  std::string key;  // "section.key"
  ValueType type;
  nlohmann::json default_value;
  std::string help;
  std::vector<std::string> allowed;  // String keys: the allowed values (empty = any)
  double min = -1e300, max = 1e300;  // Int/Float keys: inclusive range
};

// The schema: every key the runner knows, in the order they are documented.
const std::vector<KeySpec>& config_schema();

class Config {
 public:
  Config();  // schema defaults

  // Applies a model preset (model.preset = tiny | small | 182M | 469M | 978M) to the model keys that
  // no file or override has set explicitly.
  void apply_file(const std::filesystem::path& path);  // .toml or .json, nested [sections]
  // `text` is parsed by the key's type ("1e-3", "true", "relu", ...).
  void set_from_string(const std::string& key, const std::string& text);
  void set(const std::string& key, const nlohmann::json& value);
  // Parses overrides of the form --section.key=value (or --section.key value pairs).
  void apply_overrides(const std::vector<std::string>& args);

  int64_t integer(const std::string& key) const;
  double real(const std::string& key) const;
  bool boolean(const std::string& key) const;
  const std::string& string(const std::string& key) const;
  bool is_explicit(const std::string& key) const { return explicit_.count(key) > 0; }

  // Resolves the preset and checks cross-key constraints (throws naming the keys).
  void finalize();
  // {"section": {"key": value}} in schema order.
  nlohmann::ordered_json to_json() const;
  std::string to_toml() const;

  // The model described by the model.* and moe.* keys (vocab_size from the dataset).
  ModelConfig model_config(int64_t vocab_size) const;

 private:
  const KeySpec& spec(const std::string& key) const;
  std::map<std::string, nlohmann::json> values_;
  std::map<std::string, bool> explicit_;
};

// A human-readable table of the schema (key, type, default, allowed, help).
std::string describe_schema();

}  // namespace remoe::experiments
