// Numbers and names in configs (issue 11): integers that overflow int64 are errors naming the key
// (in TOML, JSON and overrides), a literal at the limit still works, and run.name stays inside
// run.dir.
#include <doctest/doctest.h>

#include "experiments/config/config.h"
#include "test_util.h"

using namespace remoe::experiments;
using remoe::test::TempDir;

TEST_CASE("config: an integer beyond int64 is an error naming the key, in TOML, JSON and overrides") {
  TempDir dir("config_numbers");
  for (const char* literal : {"9223372036854775808", "-9223372036854775809", "99999999999999999999999",
                              "0x8000000000000000", "9_223_372_036_854_775_808"}) {
    CAPTURE(literal);
    Config c;  // before: toml11 clamped to INT64_MAX and the range check let it through
    CHECK_THROWS_WITH_ALL(c.apply_file(dir.write("big.toml", std::string("[run]\nseed = ") + literal + "\n")),
                          "run.seed", "does not fit a 64-bit integer");
  }
  Config at_limit;
  at_limit.apply_file(dir.write("max.toml", "[run]\nseed = 9223372036854775807\n"));
  CHECK(at_limit.integer("run.seed") == INT64_MAX);
  Config hex_limit;
  hex_limit.apply_file(dir.write("hex.toml", "[run]\nseed = 0x7fff_ffff_ffff_ffff\n"));
  CHECK(hex_limit.integer("run.seed") == INT64_MAX);

  for (const char* literal : {"9223372036854775808", "18446744073709551615", "18446744073709551616", "1e19"}) {
    CAPTURE(literal);
    Config c;  // before: the unsigned value wrapped to a negative int64
    CHECK_THROWS_WITH_ALL(c.apply_file(dir.write("big.json", std::string("{\"run\": {\"seed\": ") + literal + "}}")),
                          "run.seed", "does not fit a 64-bit integer");
  }
  Config json_limit;
  json_limit.apply_file(dir.write("max.json", "{\"run\": {\"seed\": 9223372036854775807}}"));
  CHECK(json_limit.integer("run.seed") == INT64_MAX);

  Config overrides;
  CHECK_THROWS_WITH_ALL(overrides.apply_overrides({"--train.steps=9223372036854775808"}), "train.steps",
                        "does not fit a 64-bit integer");
  CHECK_THROWS_WITH_ALL(overrides.apply_overrides({"--train.steps=12x"}), "train.steps", "must be integer");
}

TEST_CASE("config: run.name cannot leave run.dir") {
  for (const char* name : {"../escape", "a/b", "..", ".", "/abs"}) {
    CAPTURE(name);
    Config c;
    c.set("run.name", name);
    CHECK_THROWS_WITH_ALL(c.finalize(), "run.name", "plain directory name");
  }
  Config ok;
  ok.set("run.name", "relu-small.s1");
  ok.finalize();
  CHECK(ok.string("run.name") == "relu-small.s1");
}
