#include "experiments/analyze/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace remoe::experiments {

StageResult find_stages(const std::vector<int64_t>& steps, const std::vector<double>& sparsity, double target,
                        const StageOptions& o) {
  REMOE_CHECK(!steps.empty() && steps.size() == sparsity.size(), "find_stages: ", steps.size(), " steps and ",
              sparsity.size(), " sparsity values (need the same, at least one)");
  for (size_t i = 1; i < steps.size(); ++i)
    REMOE_CHECK(steps[i] > steps[i - 1], "find_stages: steps must increase (", steps[i - 1], " then ", steps[i], ")");
  REMOE_CHECK(o.window_steps >= 1 && o.min_stage3_rows >= 1 && o.band > 0, "find_stages: bad options");
  const size_t n = steps.size();
  StageResult r;
  r.target = target;
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < n; ++i) gaps.push_back(steps[i] - steps[i - 1]);
  if (gaps.empty()) {
    r.interval = std::max<int64_t>(1, steps[0]);
  } else {
    std::nth_element(gaps.begin(), gaps.begin() + static_cast<std::ptrdiff_t>(gaps.size() / 2), gaps.end());
    r.interval = gaps[gaps.size() / 2];
  }
  r.window_rows = std::max<int64_t>(1, (o.window_steps + r.interval - 1) / r.interval);

  // Stage I → II: the first row rising above the running minimum of the rows before it.
  double low = sparsity[0];
  for (size_t i = 1; i < n; ++i) {
    const double gap = target - low;
    if (gap > 0 && sparsity[i] > low + o.rise_fraction * gap) {
      r.stage1_end = steps[i];
      break;
    }
    low = std::min(low, sparsity[i]);
  }

  // Stage III: the trailing running mean inside the band from some row to the end.
  r.running_mean.resize(n);
  double sum = 0;
  const auto w = static_cast<size_t>(r.window_rows);
  for (size_t i = 0; i < n; ++i) {
    sum += sparsity[i];
    if (i >= w) sum -= sparsity[i - w];
    r.running_mean[i] = sum / static_cast<double>(std::min(i + 1, w));
  }
  auto in_band = [&](size_t i) { return std::abs(r.running_mean[i] - target) <= o.band; };
  for (size_t i = w - 1; i < n; ++i)
    if (in_band(i)) {
      r.first_in_band = steps[i];
      size_t out = 0;
      for (size_t j = i + 1; j < n; ++j) out += in_band(j) ? 0 : 1;
      r.out_of_band_fraction = i + 1 < n ? static_cast<double>(out) / static_cast<double>(n - i - 1) : 0.0;
      break;
    }
  size_t first = n;  // the first row of the in-band suffix
  while (first > 0 && in_band(first - 1)) --first;
  // The running mean of a row needs a full window (a shorter one at the start is not evidence).
  first = std::max(first, w - 1);
  if (first < n && static_cast<int64_t>(n - first) >= o.min_stage3_rows) {
    r.stage3_start = steps[first];
    r.stage3_sparsity = mean_std(std::vector<double>(sparsity.begin() + static_cast<std::ptrdiff_t>(first), sparsity.end()));
  }
  return r;
}

double entropy_bits(const std::vector<double>& weights) {
  double total = 0;
  for (double v : weights) {
    REMOE_CHECK(v >= 0, "entropy_bits: negative weight ", v);
    total += v;
  }
  if (total <= 0) return 0.0;
  double h = 0;
  for (double v : weights)
    if (v > 0) h -= (v / total) * std::log2(v / total);
  return h;
}

std::vector<std::vector<double>> row_fractions(const std::vector<std::vector<double>>& counts) {
  std::vector<std::vector<double>> out = counts;
  for (std::vector<double>& row : out) {
    const double total = std::accumulate(row.begin(), row.end(), 0.0);
    if (total > 0)
      for (double& v : row) v /= total;
  }
  return out;
}

std::vector<double> average_ranks(const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  REMOE_CHECK(x.size() == y.size(), "spearman: ", x.size(), " vs ", y.size(), " values");
  const size_t n = x.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  const double mean = (static_cast<double>(n) + 1.0) / 2.0;  // the mean of any average ranks
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

LoadImbalance load_imbalance(const std::vector<double>& counts) {
  REMOE_CHECK(!counts.empty(), "load_imbalance: no experts");
  double total = 0, high = counts.front(), low = counts.front();
  for (double c : counts) {
    REMOE_CHECK(c >= 0, "load_imbalance: negative count ", c);
    total += c;
    high = std::max(high, c);
    low = std::min(low, c);
  }
  const double n = static_cast<double>(counts.size()), mean = total / n;
  if (mean <= 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan, nan};
  }
  double var = 0;
  for (double c : counts) var += (c - mean) * (c - mean);
  return {high / mean, low / mean, std::sqrt(var / n) / mean};
}

std::vector<uint8_t> routing_mask(const std::vector<int64_t>& token, const std::vector<int64_t>& expert, int64_t tokens,
                                  int64_t experts) {
  REMOE_CHECK(token.size() == expert.size(), "routing_mask: ", token.size(), " tokens vs ", expert.size(), " experts");
  REMOE_CHECK(tokens >= 0 && experts >= 1, "routing_mask: bad shape [", tokens, ", ", experts, "]");
  std::vector<uint8_t> mask(static_cast<size_t>(tokens * experts), 0);
  for (size_t i = 0; i < token.size(); ++i) {
    REMOE_CHECK(token[i] >= 0 && token[i] < tokens && expert[i] >= 0 && expert[i] < experts, "routing_mask: pair (",
                token[i], ", ", expert[i], ") outside [", tokens, ", ", experts, "]");
    mask[static_cast<size_t>(token[i] * experts + expert[i])] = 1;
  }
  return mask;
}

RoutingFlips routing_flips(const std::vector<std::vector<uint8_t>>& a, const std::vector<std::vector<uint8_t>>& b,
                           int64_t experts) {
  REMOE_CHECK(!a.empty() && a.size() == b.size(), "routing_flips: ", a.size(), " vs ", b.size(), " layers (need the same, at least one)");
  REMOE_CHECK(experts >= 1, "routing_flips: experts must be >= 1");
  const auto E = static_cast<size_t>(experts);
  RoutingFlips r;
  double flips = 0, entries = 0, changed = 0, rows = 0;
  for (size_t l = 0; l < a.size(); ++l) {
    REMOE_CHECK(a[l].size() == b[l].size() && a[l].size() % E == 0, "routing_flips: layer ", l, ": masks of ", a[l].size(),
                " and ", b[l].size(), " entries (need the same, a multiple of ", experts, ")");
    double layer = 0;
    for (size_t t = 0; t < a[l].size(); t += E) {
      bool differs = false;
      for (size_t e = t; e < t + E; ++e)
        if ((a[l][e] != 0) != (b[l][e] != 0)) {
          layer += 1;
          differs = true;
        }
      changed += differs ? 1 : 0;
    }
    flips += layer;
    entries += static_cast<double>(a[l].size());
    rows += static_cast<double>(a[l].size() / E);
    r.layer_flip_rate.push_back(a[l].empty() ? 0.0 : layer / static_cast<double>(a[l].size()));
  }
  r.flip_rate = entries > 0 ? flips / entries : 0.0;
  r.changed_fraction = rows > 0 ? changed / rows : 0.0;
  return r;
}

}  // namespace remoe::experiments
