#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "models/train_step.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// Real English text (the GPL-3 licence, from Debian's common-licenses), as byte tokens.
std::vector<int64_t> text_bytes() {
  std::ifstream in(REMOE_SOURCE_DIR "/tests/data/gpl3.txt", std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing tests/data/gpl3.txt");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::vector<int64_t>(s.begin(), s.end());
}

// Batch `i`: B windows of T+1 bytes at pseudo-random (deterministic) offsets.
Batch text_batch(const std::vector<int64_t>& data, int64_t B, int64_t T, uint64_t i) {
  std::vector<int64_t> x, y;
  for (int64_t b = 0; b < B; ++b) {
    uint64_t h = (i * 1000003u + static_cast<uint64_t>(b) * 7919u) * 2654435761u;
    size_t off = static_cast<size_t>(h % (data.size() - static_cast<size_t>(T) - 1));
    for (int64_t t = 0; t < T; ++t) {
      x.push_back(data[off + t]);
      y.push_back(data[off + t + 1]);
    }
  }
  return {from_vector(x, {B, T}), from_vector(y, {B, T})};
}

ModelConfig tiny(const std::string& ffn, int64_t E, int64_t k) {
  ModelConfig c;
  c.vocab_size = 256;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn = ffn;
  c.num_experts = E;
  c.topk = k;
  c.ffn_hidden = 64;
  c.seed = 1;
  return c;
}

}  // namespace

TEST_CASE("parameter names are stable checkpoint keys") {
  Transformer m(tiny("relu", 4, 1));
  NamedTensors p = m.named_parameters();
  CHECK(p.front().first == "embed");
  CHECK(p[1].first == "lm_head");  // a module's own parameters first, then children (PyTorch's order)
  CHECK(p[2].first == "layers.0.attn_norm.weight");
  CHECK(m.parameter("layers.1.ffn.router").shape() == Shape{32, 4});
  CHECK(m.parameter("layers.1.ffn.experts.3.w_down").shape() == Shape{64, 32});
  CHECK(p.back().first == "final_norm.weight");
}

TEST_CASE("config errors name the key and the allowed values") {
  ModelConfig c = tiny("relu", 4, 1);
  c.ffn = "moe";
  CHECK_THROWS_WITH_ALL(c.validate(), "moe.router", "'moe'", "dense, topk, relu, hash, expert_choice, sparsemixer, lory");
  c = tiny("topk", 4, 5);
  CHECK_THROWS_WITH_ALL(c.validate(), "moe.topk", "5");
  c = tiny("relu", 4, 1);
  c.n_kv_heads = 3;
  CHECK_THROWS_WITH_ALL(c.validate(), "n_kv_heads");
}

TEST_CASE("a tiny model's loss falls on real text, for every registered router") {
  std::vector<int64_t> data = text_bytes();
  for (const std::string& ffn : router_names()) {
    CAPTURE(ffn);
    ModelConfig c = tiny(ffn, 4, 1);
    c.lory_segment = 8;  // 4 segments of the 32-token windows
    Transformer model(c);
    LrSchedule sched{3e-3, 3e-4, 10, 120};
    Trainer trainer(model, AdamWOptions{}, sched);
    double first = 0, last = 0;
    for (int step = 0; step < 120; ++step) {
      StepMetrics m = trainer.step({text_batch(data, 8, 32, static_cast<uint64_t>(step))});
      if (step < 5) first += m.lm_loss / 5;
      if (step >= 115) last += m.lm_loss / 5;
    }
    MESSAGE(ffn << ": loss " << first << " -> " << last);
    CHECK(first > 5.0);         // ≈ ln 256 at init
    CHECK(last < first - 2.0);  // bytes of English: well below uniform
  }
}

// Spec §2, "three stages": from near-dense (λ tiny) through sparsifying to stable at 1 − k/E.
// Sparsity of one step is measured over L·T·E = 2·(2048 or 4096)·8 router entries, so it is noisy
// (±0.02 per step at this size); "settled" and "stays" are judged on its 10-step moving average,
// the raw per-step excursions are reported. Setting: d 64, 2 layers, byte tokens, E = 8 with k = 1
// (the paper's main setting, target 0.875; 32 × 64 tokens a step) and k = 2 (0.75; 64 × 64 tokens).
// What this scale can and cannot show (measured with the seed and thread count varied): at a much
// smaller batch (8 × 32) or lr 3e-3 the tiny model drifts *sparser* than the target on the LM loss
// alone, and λ decays to ~1e-30 and cannot pull it back (a ReLU router has no gradient for inactive
// pairs). E = 4, k = 1 settles too but is fragile in stage III: after the stage-II overshoot λ
// decays for ~100 steps (the controller has no floor, as in the paper) to ~1e-13, and when the LM
// then drifts denser, λ needs ~100 steps to climb back, leaving the band meanwhile (with the
// current kernels: seed 1 at 32 × 64 and seed 2 at 64 × 64 tokens did; seed 1 at 64 × 64 held).
// E = 8, k = 1 held the band in stage III for 6 of 6 runs (seeds 1–3, lr 1e-3 and 5e-4); E = 8,
// k = 2 did so for 3 of 3 seeds with 64 × 64 tokens a step, but only for 2 of 5 (seed, lr) runs
// with 32 × 64, hence its larger batch.
//
// Skipped (visibly) in sanitizer builds: it checks training dynamics, not memory safety (the same
// trainer and router paths run under ASan in the other model tests), the trajectory depends on the
// exact float code (no -march=native there), and under ASan it alone would take many minutes.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
TEST_CASE("ReMoE sparsity settles at 1 - k/E and stays there (alpha = 1.2)" * doctest::skip(kSanitizerBuild)) {
  std::vector<int64_t> data = text_bytes();
  struct Case {
    int64_t E, k;
    double lr;
    int64_t batch;
  };
  for (Case c : {Case{8, 1, 1e-3, 32}, Case{8, 2, 5e-4, 64}}) {
    CAPTURE(c.E);
    CAPTURE(c.k);
    ModelConfig config = tiny("relu", c.E, c.k);
    config.d_model = 64;
    config.ffn_hidden = 128;
    Transformer model(config);
    Trainer trainer(model, AdamWOptions{}, LrSchedule{c.lr, c.lr / 10, 10, 400});
    const double target = 1.0 - static_cast<double>(c.k) / static_cast<double>(c.E);
    std::vector<double> sparsity;
    int64_t settled = -1, outside_after = 0, raw_outside_after = 0;
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 400; ++step) {
      StepMetrics m = trainer.step({text_batch(data, c.batch, 64, static_cast<uint64_t>(step))});
      sparsity.push_back(m.sparsity);
      double average = 0;
      const int from = std::max(0, step - 9);
      for (int j = from; j <= step; ++j) average += sparsity[static_cast<size_t>(j)] / (step - from + 1);
      const bool inside = std::abs(average - target) <= 0.02;
      if (std::getenv("REMOE_TRACE") && step % 20 == 0)
        MESSAGE(step << " S=" << m.sparsity << " S10=" << average << " lambda=" << m.lambda << " lm=" << m.lm_loss);
      if (settled < 0 && step >= 9 && inside) settled = step;
      if (step >= 300 && !inside) ++outside_after;
      if (step >= 300 && std::abs(m.sparsity - target) > 0.02) ++raw_outside_after;
      if (step < 5) first_loss += m.lm_loss / 5;
      if (step >= 395) last_loss += m.lm_loss / 5;
    }
    MESSAGE("E=" << c.E << " k=" << c.k << ": settled (10-step mean within ±0.02) at step " << settled
                 << "; steps 300-399 outside: " << outside_after << " (mean), " << raw_outside_after
                 << " (single steps); loss " << first_loss << " -> " << last_loss);
    CHECK(settled >= 0);
    CHECK(settled < 300);
    CHECK(outside_after == 0);  // stays there
    CHECK(last_loss < first_loss - 2.0);
  }
}
