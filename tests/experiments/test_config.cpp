// Config: schema defaults, presets, TOML/JSON files, --section.key=value overrides, and errors
// that name the key and what is allowed.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "experiments/config/config.h"
#include "test_util.h"

using remoe::experiments::Config;
namespace fs = std::filesystem;

namespace {
fs::path write_temp(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("remoe_test_config_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p;
}
}  // namespace

TEST_CASE("config: defaults, preset, file and overrides apply in order") {
  Config c;
  CHECK(c.string("moe.router") == "relu");
  CHECK(c.real("moe.l1_coeff_init") == doctest::Approx(1e-8));
  CHECK(c.real("moe.l1_coeff_multiplier") == doctest::Approx(1.2));

  fs::path f = write_temp("a.toml",
                          "[model]\npreset = \"small\"\nn_layers = 3\n[moe]\nrouter = \"topk\"\nnum_experts = 16\n"
                          "[train]\nlr = 1e-3\nsteps = 50\n");
  c.apply_file(f);
  c.apply_overrides({"--moe.topk=2", "--train.lr", "2e-4", "--train.deterministic=false"});
  c.finalize();
  CHECK(c.integer("model.d_model") == 256);  // from the preset
  CHECK(c.integer("model.n_layers") == 3);   // the file overrides the preset
  CHECK(c.integer("moe.num_experts") == 16);
  CHECK(c.integer("moe.topk") == 2);
  CHECK(c.real("train.lr") == doctest::Approx(2e-4));  // the override wins over the file
  CHECK_FALSE(c.boolean("train.deterministic"));
  CHECK(c.string("run.name") == "topk-small-s1234");
  remoe::ModelConfig m = c.model_config(1000);
  CHECK(m.vocab_size == 1000);
  CHECK(m.ffn == "topk");
  CHECK(m.n_layers == 3);

  // The resolved config written out reads back to the same values.
  fs::path out = write_temp("resolved.toml", c.to_toml());
  Config d;
  d.apply_file(out);
  d.finalize();
  CHECK(d.to_json() == c.to_json());
  fs::remove(f);
  fs::remove(out);
}

TEST_CASE("config: JSON files work like TOML") {
  fs::path f = write_temp("b.json", R"({"moe": {"router": "dense"}, "train": {"steps": 7}})");
  Config c;
  c.apply_file(f);
  CHECK(c.string("moe.router") == "dense");
  CHECK(c.integer("train.steps") == 7);
  fs::remove(f);
}

TEST_CASE("config: errors name the key and what is allowed") {
  Config c;
  CHECK_THROWS_WITH_ALL(c.set_from_string("moe.routr", "relu"), "unknown key 'moe.routr'", "moe.router");
  CHECK_THROWS_WITH_ALL(c.set_from_string("nosuch.key", "1"), "unknown key 'nosuch.key'");
  CHECK_THROWS_WITH_ALL(c.set_from_string("train.steps", "ten"), "train.steps", "integer", "ten");
  CHECK_THROWS_WITH_ALL(c.set_from_string("train.steps", "1.5"), "train.steps", "integer");
  CHECK_THROWS_WITH_ALL(c.set_from_string("train.deterministic", "yes"), "train.deterministic", "true or false");
  CHECK_THROWS_WITH_ALL(c.set_from_string("moe.router", "softmax"), "moe.router", "dense, topk, relu");
  CHECK_THROWS_WITH_ALL(c.set_from_string("train.lr", "-1"), "train.lr", "out of range");
  CHECK_THROWS_WITH_ALL(c.set_from_string("moe.num_experts", "0"), "moe.num_experts", "out of range");
  CHECK_THROWS_WITH_ALL(c.apply_overrides({"--steps=3"}), "--steps", "section.key");
  CHECK_THROWS_WITH_ALL(c.apply_overrides({"positional"}), "positional");

  fs::path f = write_temp("bad.toml", "[train]\nsteps = \"many\"\n");
  CHECK_THROWS_WITH_ALL(c.apply_file(f), "train.steps", "integer");
  std::ofstream(f) << "[train\nsteps = 3\n";
  CHECK_THROWS_WITH_ALL(c.apply_file(f), "not valid TOML");
  fs::remove(f);
  CHECK_THROWS_WITH_ALL(c.apply_file("/nonexistent/x.toml"), "not found");

  // Cross-key constraints are checked at finalize, naming both keys.
  Config e;
  e.set_from_string("moe.topk", "9");
  CHECK_THROWS_WITH_ALL(e.finalize(), "moe.topk", "9");
  Config g;
  g.set_from_string("train.min_lr", "1");
  CHECK_THROWS_WITH_ALL(g.finalize(), "train.min_lr", "train.lr");
}
