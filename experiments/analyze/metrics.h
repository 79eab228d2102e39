// The plain metric functions of `remoe analyze` (docs/experiments.md, "Analyses"): no files, no
// model, hand-testable (tests/experiments/test_analyze.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "experiments/report/summary.h"

namespace remoe::experiments {

// mean ± sample std: Stat and mean_std of experiments/report/summary.h (shared with `remoe report`).

// ReMoE's three training stages from the logged (step, sparsity) rows of one run.
struct StageOptions {
  // Stage I ends at the first logged row whose sparsity exceeds the running minimum of the rows
  // before it by rise_fraction of that minimum's distance to the target.
  double rise_fraction = 0.1;
  double band = 0.01;          // stage III: the running mean within ±band of the target …
  int64_t window_steps = 10;   // … over the trailing rows covering at least this many steps
  int64_t min_stage3_rows = 3; // … and staying there to the last row, for at least this many rows
};

struct StageResult {
  double target = 0;
  int64_t interval = 0;       // median step difference of the rows
  int64_t window_rows = 1;    // rows in the running mean: max(1, ceil(window_steps / interval))
  std::optional<int64_t> stage1_end;    // the step where stage II starts
  std::optional<int64_t> stage3_start;  // the settling time (none: it never settled)
  // The first row whose running mean (full window) is inside the band: when sparsification first
  // reaches the target (the paper's "settling" of its α figure), and the fraction of the rows after
  // it whose running mean is outside the band again (how much the controller oscillates; 0 when
  // no row follows).
  std::optional<int64_t> first_in_band;
  double out_of_band_fraction = 0;
  Stat stage3_sparsity;                 // the logged sparsity of the stage-III rows
  std::vector<double> running_mean;     // per row
};

// steps strictly increasing, one sparsity per step. Throws on mismatched or empty inputs.
StageResult find_stages(const std::vector<int64_t>& steps, const std::vector<double>& sparsity, double target,
                        const StageOptions& options = {});

// Shannon entropy in bits of a distribution given by non-negative weights (normalised here);
// 0 for an all-zero vector.
double entropy_bits(const std::vector<double>& weights);

// Each row divided by its sum (an all-zero row stays zero).
std::vector<std::vector<double>> row_fractions(const std::vector<std::vector<double>>& counts);

// Ranks 1..n, ties given the mean of the ranks they span.
std::vector<double> average_ranks(const std::vector<double>& values);

// Spearman's rank correlation: Pearson's correlation of the average ranks. NaN when n < 2 or a
// side is constant.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// The load imbalance of one MoE layer from its per-expert pair counts c_e (pairs routed to each
// expert): max_e c_e / mean_e c_e (1 balanced, E all on one expert), min_e c_e / mean_e c_e, and
// the coefficient of variation std_e c_e / mean_e c_e with the population std over the E experts
// (0 balanced, sqrt(E − 1) all on one expert). NaN fields when every count is zero; throws on an
// empty vector or a negative count.
struct LoadImbalance {
  double max_over_mean = 0, min_over_mean = 0, cv = 0;
};
LoadImbalance load_imbalance(const std::vector<double>& counts);

// The 0/1 routing mask of one layer, [tokens, experts] row-major, from its (token, expert) pairs.
// Throws on a pair outside the shape.
std::vector<uint8_t> routing_mask(const std::vector<int64_t>& token, const std::vector<int64_t>& expert, int64_t tokens,
                                  int64_t experts);

// How two routings of the same tokens differ, given per layer the 0/1 masks [T·E] of both.
struct RoutingFlips {
  double flip_rate = 0;                 // Σ_l Σ |a_l − b_l| / (L·T·E)
  std::vector<double> layer_flip_rate;  // Σ |a_l − b_l| / (T·E) per layer
  double changed_fraction = 0;          // of the L·T (layer, token) rows, those whose expert set differs
};
// Throws when the layer counts or a layer's mask sizes differ, or a size is not a multiple of experts.
RoutingFlips routing_flips(const std::vector<std::vector<uint8_t>>& a, const std::vector<std::vector<uint8_t>>& b,
                           int64_t experts);

}  // namespace remoe::experiments
