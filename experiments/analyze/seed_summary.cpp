#include "experiments/analyze/seed_summary.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "experiments/report/summary.h"

namespace remoe::experiments {

using nlohmann::ordered_json;

namespace {

std::vector<double> numbers(const ordered_json& values) {
  std::vector<double> out;
  for (const auto& v : values)
    if (v.is_number()) out.push_back(v.get<double>());
  return out;
}

std::string cell(const std::vector<double>& values, const std::string& format) {
  if (values.empty()) return "–";
  const Stat s = mean_std(values);
  const std::string mean = fmt::format(fmt::runtime(format), s.mean);
  if (values.size() < 2) return fmt::format("{} (1)", mean);
  return fmt::format("{} ± {} ({})", mean, fmt::format(fmt::runtime(format), s.std), values.size());
}

}  // namespace

std::optional<double> mean_of(const ordered_json& values) {
  const std::vector<double> v = numbers(values);
  if (v.empty()) return std::nullopt;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

std::optional<double> spread_of(const ordered_json& values) {
  const std::vector<double> v = numbers(values);
  if (v.empty()) return std::nullopt;
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *hi - *lo;
}

std::optional<double> number_of(const ordered_json& value) {
  if (!value.is_number()) return std::nullopt;
  return value.get<double>();
}

std::string per_label_summary(const std::vector<ordered_json>& results, const std::vector<SummaryColumn>& columns) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const ordered_json*>> groups;
  for (const ordered_json& j : results) {
    if (j.contains("error")) continue;
    const std::string label = j.contains("label") ? j["label"].get<std::string>() : j.value("key", std::string("?"));
    if (!groups.count(label)) order.push_back(label);
    groups[label].push_back(&j);
  }
  std::string s = "| label | runs |", rule = "|---|---:|";
  for (const SummaryColumn& c : columns) {
    s += fmt::format(" {} |", c.header);
    rule += "---:|";
  }
  s += fmt::format("\n{}\n", rule);
  for (const std::string& label : order) {
    s += fmt::format("| {} | {} |", label, groups[label].size());
    for (const SummaryColumn& c : columns) {
      std::vector<double> values;
      for (const ordered_json* j : groups[label])
        if (std::optional<double> v = c.value(*j)) values.push_back(*v);
      s += fmt::format(" {} |", cell(values, c.format));
    }
    s += "\n";
  }
  return s;
}

}  // namespace remoe::experiments
