#include <cmath>
#include <numbers>

#include "models/lr_schedule.h"
#include "models/sparsity_controller.h"
#include "test_util.h"

using namespace remoe;

TEST_CASE("LrSchedule: warm-up, cosine, floor (Megatron step convention)") {
  LrSchedule s{1e-3, 1e-4, 10, 110};
  CHECK(s.lr_at(0) == 0.0);  // the first update, after 0 completed steps
  CHECK(s.lr_at(1) == doctest::Approx(1e-4));
  CHECK(s.lr_at(5) == doctest::Approx(5e-4));
  CHECK(s.lr_at(10) == doctest::Approx(1e-3));                 // warm-up end = peak
  CHECK(s.lr_at(11) == doctest::Approx(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(std::numbers::pi / 100))));
  CHECK(s.lr_at(60) == doctest::Approx(5.5e-4));               // halfway through the decay
  CHECK(s.lr_at(35) == doctest::Approx(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(s.lr_at(109) > 1e-4);
  CHECK(s.lr_at(109) == doctest::Approx(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(std::numbers::pi * 0.99))));
  CHECK(s.lr_at(110) == doctest::Approx(1e-4).epsilon(1e-12));  // end = min
  CHECK(s.lr_at(111) == 1e-4);                                   // beyond: constant
  CHECK(s.lr_at(1000000) == 1e-4);
  // Monotone up through warm-up, monotone down through the decay.
  for (int64_t i = 0; i < 10; ++i) CHECK(s.lr_at(i) < s.lr_at(i + 1));
  for (int64_t i = 10; i < 110; ++i) CHECK(s.lr_at(i) > s.lr_at(i + 1));
}

TEST_CASE("LrSchedule: edge cases and the paper preset") {
  LrSchedule no_warm{2e-3, 0.0, 0, 4};
  CHECK(no_warm.lr_at(0) == 2e-3);  // no warm-up: peak at once
  CHECK(no_warm.lr_at(2) == doctest::Approx(1e-3));
  CHECK(no_warm.lr_at(4) == 0.0);
  LrSchedule all_warm{1.0, 0.5, 4, 4};  // warm-up covers the whole run
  CHECK(all_warm.lr_at(2) == 0.5);
  CHECK(all_warm.lr_at(4) == 1.0);
  CHECK(all_warm.lr_at(5) == 0.5);

  LrSchedule p = LrSchedule::paper(60000);
  CHECK(p.peak_lr == 5e-4);
  CHECK(p.min_lr == 5e-5);
  CHECK(p.warmup_steps == 600);  // 1% of the steps
  CHECK(p.lr_at(600) == doctest::Approx(5e-4));
  CHECK(p.lr_at(60000) == doctest::Approx(5e-5));

  CHECK_THROWS_WITH_ALL(LrSchedule({1e-3, 1e-4, 10, 110}).lr_at(-1), "lr_at", "-1");
  CHECK_THROWS_WITH_ALL(LrSchedule({1e-3, 1e-4, 200, 110}).lr_at(0), "warmup_steps 200", "total_steps 110");
  CHECK_THROWS_WITH_ALL(LrSchedule({1e-4, 1e-3, 10, 110}).lr_at(0), "min_lr");
  CHECK_THROWS_WITH_ALL(LrSchedule::paper(0), "total_steps");
}

TEST_CASE("SparsityController: multiply when too dense, divide otherwise") {
  SparsityController c;  // k = 1, E = 8: target 0.875, λ0 = 1e-8, α = 1.2
  CHECK(c.target() == 0.875);
  CHECK(c.lambda() == 1e-8);
  // Three measurements below target (too dense), then one above, then one exactly at it.
  double expect = 1e-8;
  for (double s : {0.1, 0.5, 0.87}) {
    expect *= 1.2;
    CHECK(c.update(s) == doctest::Approx(expect).epsilon(1e-15));
  }
  CHECK(c.lambda() == doctest::Approx(1e-8 * 1.2 * 1.2 * 1.2).epsilon(1e-15));
  expect /= 1.2;
  CHECK(c.update(0.9) == doctest::Approx(expect).epsilon(1e-15));
  expect /= 1.2;
  CHECK(c.update(0.875) == doctest::Approx(expect).epsilon(1e-15));  // equality divides
  CHECK(c.lambda() == doctest::Approx(1e-8 * 1.2).epsilon(1e-15));
  CHECK(c.updates() == 5);

  // No clamp: a long too-sparse run keeps dividing far below λ0.
  for (int i = 0; i < 200; ++i) c.update(1.0);
  CHECK(c.lambda() == doctest::Approx(1e-8 * std::pow(1.2, 1 - 200)).epsilon(1e-12));

  CHECK_THROWS_WITH_ALL(c.update(NAN), "SparsityController::update", "nan");
  CHECK_THROWS_WITH_ALL(c.update(1.5), "SparsityController::update", "1.5");
}

TEST_CASE("SparsityController: exact integer comparison from counts") {
  SparsityController c({2, 16, 1e-8, 1.2});  // granularity 2 of k=1,E=8: target 1 − 2/16
  CHECK(c.target() == 0.875);
  // 1/8 of 3000 entries is 375: 376 active is too dense, 375 is exactly at the target (divide).
  CHECK(c.update_counts(376, 3000) == doctest::Approx(1.2e-8));
  CHECK(c.update_counts(375, 3000) == doctest::Approx(1e-8));
  CHECK(c.update_counts(0, 3000) == doctest::Approx(1e-8 / 1.2));
  // Counts far beyond 2^53 / E still compare exactly.
  const int64_t big = int64_t{1} << 60;
  CHECK(c.update_counts(big / 8 + 1, big) == doctest::Approx(1e-8));
  CHECK_THROWS_WITH_ALL(c.update_counts(5, 4), "update_counts", "active 5", "total 4");
  CHECK_THROWS_WITH_ALL(SparsityController({9, 8, 1e-8, 1.2}), "k 9", "num_experts 8");
  CHECK_THROWS_WITH_ALL(SparsityController({1, 8, 1e-8, 1.0}), "alpha");
  CHECK_THROWS_WITH_ALL(SparsityController({1, 8, 0.0, 1.2}), "lambda0");
}

TEST_CASE("SparsityController: state round-trip") {
  SparsityController a;
  for (double s : {0.2, 0.3, 0.4, 0.95}) a.update(s);
  SparsityControllerState st = a.state();
  CHECK(st.lambda == a.lambda());
  CHECK(st.updates == 4);

  SparsityController b;
  b.load_state(st);
  CHECK(b.lambda() == a.lambda());
  CHECK(b.updates() == 4);
  for (double s : {0.1, 0.99, 0.5}) CHECK(a.update(s) == b.update(s));  // continue identically
  CHECK_THROWS_WITH_ALL(b.load_state({0.0, 1}), "load_state", "lambda");
  CHECK_THROWS_WITH_ALL(b.load_state({1e-8, -1}), "load_state", "updates");
}
