#include "experiments/sweep/sweep_file.h"

#include <set>

#include <fmt/format.h>
#include <toml.hpp>

#include "core/error.h"
#include "experiments/data/hash.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Where a value sits in the file, for error messages: "sweep file F: [axis 2 'E'] values".
struct Where {
  std::string file, place;
  std::string operator()(const std::string& what) const {
    return fmt::format("sweep file {}: {}{}", file, place, what.empty() ? "" : " " + what);
  }
};

json toml_to_json(const toml::value& v) {
  if (v.is_boolean()) return v.as_boolean();
  if (v.is_integer()) return static_cast<int64_t>(v.as_integer());
  if (v.is_floating()) return v.as_floating();
  if (v.is_string()) return v.as_string().str;
  if (v.is_array()) {
    json out = json::array();
    for (const toml::value& e : v.as_array()) out.push_back(toml_to_json(e));
    return out;
  }
  if (v.is_table()) {
    json out = json::object();
    for (const auto& [k, e] : v.as_table()) out[k] = toml_to_json(e);
    return out;
  }
  fail("dates and times are not sweep values");
}

void check_fields(const json& table, const std::set<std::string>& allowed, const Where& where) {
  REMOE_CHECK(table.is_object(), where("must be a table"));
  for (const auto& [key, unused] : table.items()) {
    if (allowed.count(key)) continue;
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(where(fmt::format("has an unknown field '{}' (allowed: {})", key, list)));
  }
}

std::string string_field(const json& table, const std::string& key, const Where& where, std::string fallback = "") {
  if (!table.contains(key)) return fallback;
  REMOE_CHECK(table[key].is_string(), where(key + " must be a string, got " + table[key].dump()));
  return table[key].get<std::string>();
}

// Flattens {"moe": {"topk": 1}, "train.steps": 10} into config keys and checks each one against
// the schema (type and range) by setting it on a scratch Config.
KeyValues config_keys(const json& table, const Where& where, const std::string& prefix = "") {
  REMOE_CHECK(table.is_object(), where("must be a table of config keys"));
  KeyValues out;
  for (const auto& [key, value] : table.items()) {
    const std::string full = prefix.empty() ? key : prefix + "." + key;
    if (value.is_object()) {
      KeyValues inner = config_keys(value, where, full);
      out.insert(out.end(), inner.begin(), inner.end());
      continue;
    }
    try {
      Config scratch;
      scratch.set(full, value);
    } catch (const Error& e) {
      fail(where(e.what()));
    }
    out.emplace_back(full, value);
  }
  return out;
}

std::map<std::string, KeyValues> scale_keys(const json& table, const Where& where) {
  std::map<std::string, KeyValues> out;
  if (!table.contains("scale")) return out;
  REMOE_CHECK(table["scale"].is_object(), where("scale must be a table of [scale.<name>] tables"));
  for (const auto& [name, keys] : table["scale"].items())
    out[name] = config_keys(keys, Where{where.file, where.place + " [scale." + name + "]"});
  return out;
}

std::string value_label(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

SweepAxis parse_axis(const json& table, size_t index, const Where& file_where) {
  SweepAxis axis;
  Where where{file_where.file, fmt::format("[[axis]] {}", index + 1)};
  check_fields(table, {"name", "key", "values", "level", "prefix"}, where);
  axis.name = string_field(table, "name", where);
  REMOE_CHECK(!axis.name.empty(), where("needs a name"));
  where.place = fmt::format("[[axis]] '{}'", axis.name);
  const std::string prefix = string_field(table, "prefix", where);
  const bool simple = table.contains("key") || table.contains("values");
  REMOE_CHECK(simple != table.contains("level"), where("needs either key + values or [[axis.level]] tables"));
  if (simple) {
    const std::string key = string_field(table, "key", where);
    REMOE_CHECK(!key.empty(), where("needs a key (a config key such as moe.num_experts)"));
    REMOE_CHECK(table.contains("values") && table["values"].is_array(), where("values must be an array"));
    for (const json& v : table["values"]) {
      json one = json::object();
      one[key] = v;
      axis.levels.push_back({prefix + value_label(v), config_keys(one, where), {}});
    }
  } else {
    REMOE_CHECK(table["level"].is_array(), where("level must be an array of [[axis.level]] tables"));
    for (const json& level : table["level"]) {
      check_fields(level, {"label", "set", "scale"}, where);
      SweepLevel l;
      l.label = prefix + string_field(level, "label", where);
      REMOE_CHECK(l.label != prefix, where("a level needs a label"));
      Where lw{where.file, where.place + " level '" + l.label + "'"};
      if (level.contains("set")) l.set = config_keys(level["set"], lw);
      l.scale = scale_keys(level, lw);
      axis.levels.push_back(std::move(l));
    }
  }
  REMOE_CHECK(!axis.levels.empty(), where("is empty: a grid axis needs at least one value"));
  return axis;
}

SweepPoint parse_point(const json& table, size_t index, const Where& file_where) {
  Where where{file_where.file, fmt::format("[[point]] {}", index + 1)};
  check_fields(table, {"label", "set", "scale", "compute_matched_to"}, where);
  SweepPoint p;
  p.label = string_field(table, "label", where);
  REMOE_CHECK(!p.label.empty(), where("needs a label"));
  where.place = "[[point]] '" + p.label + "'";
  if (table.contains("set")) p.set = config_keys(table["set"], where);
  p.scale = scale_keys(table, where);
  p.compute_matched_to = string_field(table, "compute_matched_to", where);
  return p;
}

void parse_header(const json& doc, SweepSpec& spec, const Where& where) {
  REMOE_CHECK(doc.contains("sweep"), where("needs a [sweep] table (name, experiment, seeds)"));
  const json& s = doc["sweep"];
  const Where sw{where.file, "[sweep]"};
  check_fields(s, {"name", "experiment", "description", "seeds"}, sw);
  spec.name = string_field(s, "name", sw);
  REMOE_CHECK(!spec.name.empty() && spec.name.find('/') == std::string::npos, sw("name must be a non-empty file name"));
  spec.experiment = string_field(s, "experiment", sw, "none");
  const std::set<std::string> experiments = {"N", "E", "G", "k", "none"};
  REMOE_CHECK(experiments.count(spec.experiment), sw("experiment = '" + spec.experiment + "' is not one of: N, E, G, k, none"));
  spec.description = string_field(s, "description", sw);
  if (s.contains("seeds")) {
    REMOE_CHECK(s["seeds"].is_number_integer() && s["seeds"].get<int64_t>() >= 1 && s["seeds"].get<int64_t>() <= 1000,
                sw("seeds must be an integer in [1, 1000], got " + s["seeds"].dump()));
    spec.seeds = s["seeds"].get<int64_t>();
  }
}

// The labels of every grid point, in expansion order (the first axis varies slowest).
std::vector<std::vector<const SweepLevel*>> grid_levels(const SweepSpec& spec) {
  std::vector<std::vector<const SweepLevel*>> grid{{}};
  for (const SweepAxis& axis : spec.axes) {
    std::vector<std::vector<const SweepLevel*>> next;
    for (const auto& prefix : grid)
      for (const SweepLevel& level : axis.levels) {
        next.push_back(prefix);
        next.back().push_back(&level);
      }
    grid = std::move(next);
  }
  if (spec.axes.empty()) grid.clear();
  return grid;
}

std::string join_labels(const std::vector<const SweepLevel*>& levels) {
  std::string out;
  for (const SweepLevel* l : levels) out += (out.empty() ? "" : "-") + l->label;
  return out;
}

void check_labels(const SweepSpec& spec, const Where& where) {
  std::set<std::string> labels;
  for (const auto& levels : grid_levels(spec)) labels.insert(join_labels(levels));
  for (const SweepPoint& p : spec.points) {
    REMOE_CHECK(labels.insert(p.label).second, where("[[point]] '" + p.label + "' repeats the label of another point"));
    REMOE_CHECK(p.label.find('/') == std::string::npos, where("[[point]] '" + p.label + "': a label cannot hold '/'"));
  }
  for (const SweepPoint& p : spec.points)
    REMOE_CHECK(p.compute_matched_to.empty() || labels.count(p.compute_matched_to),
                where("[[point]] '" + p.label + "': compute_matched_to = '" + p.compute_matched_to + "' names no point"));
  REMOE_CHECK(!labels.empty(), where("has an empty grid: no [[axis]] and no [[point]]"));
}

void append(KeyValues& to, const KeyValues& from) { to.insert(to.end(), from.begin(), from.end()); }

void append_scale(KeyValues& to, const std::map<std::string, KeyValues>& scales, const std::string& scale) {
  if (auto it = scales.find(scale); it != scales.end()) append(to, it->second);
}

std::string hash_keys(const KeyValues& keys, bool without_steps) {
  std::map<std::string, json> resolved;  // later keys override earlier ones; sorted for the hash
  for (const auto& [k, v] : keys) {
    if (k == "run.name" || k == "run.dir" || k.rfind("system.", 0) == 0) continue;
    if (without_steps && k == "train.steps") continue;
    resolved[k] = v;
  }
  const std::string text = json(resolved).dump();
  return fmt::format("{:016x}", data::fnv1a64(text.data(), text.size()));
}

}  // namespace

SweepSpec load_sweep(const fs::path& file) {
  REMOE_CHECK(fs::exists(file), "sweep file not found: ", file.string());
  const Where where{file.string(), ""};
  json doc;
  try {
    doc = toml_to_json(toml::parse(file.string()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(where(std::string("is not valid TOML: ") + e.what()));
  }
  check_fields(doc, {"sweep", "base", "scale", "axis", "point"}, Where{file.string(), "top level"});
  SweepSpec spec;
  spec.file = file;
  parse_header(doc, spec, where);
  if (doc.contains("base")) spec.base = config_keys(doc["base"], Where{file.string(), "[base]"});
  spec.scales = scale_keys(doc, Where{file.string(), ""});
  REMOE_CHECK(!spec.scales.empty(), where("needs at least one [scale.<name>] table (e.g. [scale.micro])"));
  if (doc.contains("axis")) {
    REMOE_CHECK(doc["axis"].is_array(), where("axis must be [[axis]] tables"));
    for (size_t i = 0; i < doc["axis"].size(); ++i) spec.axes.push_back(parse_axis(doc["axis"][i], i, where));
  }
  if (doc.contains("point")) {
    REMOE_CHECK(doc["point"].is_array(), where("point must be [[point]] tables"));
    for (size_t i = 0; i < doc["point"].size(); ++i) spec.points.push_back(parse_point(doc["point"][i], i, where));
  }
  check_labels(spec, where);
  return spec;
}

std::vector<PlannedRun> expand_sweep(const SweepSpec& spec, const std::string& scale, int64_t seeds) {
  const Where where{spec.file.string(), ""};
  if (!spec.scales.count(scale)) {
    std::string list;
    for (const auto& [name, unused] : spec.scales) list += (list.empty() ? "" : ", ") + name;
    fail(where("has no scale '" + scale + "' (scales: " + list + ")"));
  }
  REMOE_CHECK(seeds >= 1, "sweep: --seeds must be >= 1, got ", seeds);
  // Points first (label, keys, axis values), then the seeds of each point.
  struct Point {
    std::string label, matched_to;
    KeyValues keys;
    std::map<std::string, std::string> axis_values;
    std::map<std::string, int64_t> axis_index;
  };
  std::vector<Point> points;
  for (const auto& levels : grid_levels(spec)) {
    Point p{join_labels(levels), "", spec.base, {}, {}};
    append_scale(p.keys, spec.scales, scale);
    for (size_t a = 0; a < levels.size(); ++a) {
      append(p.keys, levels[a]->set);
      append_scale(p.keys, levels[a]->scale, scale);
      p.axis_values[spec.axes[a].name] = levels[a]->label;
      p.axis_index[spec.axes[a].name] = levels[a] - spec.axes[a].levels.data();
    }
    points.push_back(std::move(p));
  }
  for (const SweepPoint& sp : spec.points) {
    Point p{sp.label, sp.compute_matched_to, spec.base, {}, {}};
    append_scale(p.keys, spec.scales, scale);
    append(p.keys, sp.set);
    append_scale(p.keys, sp.scale, scale);
    points.push_back(std::move(p));
  }
  std::vector<PlannedRun> runs;
  for (const Point& p : points) {
    for (int64_t seed = 1; seed <= seeds; ++seed) {
      PlannedRun r;
      r.label = p.label;
      r.seed = seed;
      r.name = fmt::format("{}-s{}", p.label, seed);
      r.axis_values = p.axis_values;
      r.axis_index = p.axis_index;
      r.keys = p.keys;
      r.keys.emplace_back("run.seed", seed);
      r.config_hash = hash_keys(r.keys, !p.matched_to.empty());
      if (!p.matched_to.empty()) r.compute_matched_to = fmt::format("{}-s{}", p.matched_to, seed);
      try {
        planned_config(r).finalize();
      } catch (const Error& e) {
        fail(where(fmt::format("scale '{}', point '{}': {}", scale, p.label, e.what())));
      }
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

Config planned_config(const PlannedRun& run) {
  Config c;
  for (const auto& [key, value] : run.keys) c.set(key, value);
  return c;
}

}  // namespace remoe::experiments
