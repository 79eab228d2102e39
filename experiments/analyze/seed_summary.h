// Per-label summaries of per-run analysis results: a label is a sweep point (the run's name
// without its seed), so each row gives mean ± sample std over that point's seeds. Used by the
// domains, allocation and load_balance sections of analysis.md; stages has its own (by target).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace remoe::experiments {

struct SummaryColumn {
  std::string header;
  std::string format;  // fmt format of one number, e.g. "{:.3f}"
  // The run's value; nullopt where it has none (an error, TopK's undefined Spearman ρ).
  std::function<std::optional<double>(const nlohmann::ordered_json& run)> value;
};

// "| label | runs | <header> | …" with "mean ± std (n)" cells, labels in first-seen order; a run's
// label is its "label" field, else its "key". Runs with an "error" field are left out.
std::string per_label_summary(const std::vector<nlohmann::ordered_json>& results,
                              const std::vector<SummaryColumn>& columns);

// The value when it is a number; nullopt otherwise (null, missing).
std::optional<double> number_of(const nlohmann::ordered_json& value);
// The unweighted mean of a JSON array of numbers (nulls skipped); nullopt when none are numbers.
std::optional<double> mean_of(const nlohmann::ordered_json& values);
// max − min of a JSON array of numbers (nulls skipped); nullopt when none are numbers.
std::optional<double> spread_of(const nlohmann::ordered_json& values);

}  // namespace remoe::experiments
