// The `remoe eval` results of a sweep's runs (each run's eval.json) as one table per sweep: per
// point, the held-out loss per domain and the zero-shot accuracies, mean ± std over the seeds
// that were evaluated, with the paper's zero-shot average beside ours where it gives one
// (Table 2: the plain routers at E = 8, k = 1). The routers comparison reads this table.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/report/run_record.h"
#include "experiments/report/summary.h"

namespace remoe::experiments {

// Reads <run>/eval.json into run.eval (nothing when the file is absent). A file that is not an
// evaluate_run() result is an error naming it.
void read_eval(const std::filesystem::path& file, RunRecord& run);

struct EvalColumn {
  std::string key;    // "loss:<domain>", "loss:all", "acc:<task>", "acc:mean"
  std::string title;  // the table header
};

struct EvalPointStat {
  std::string sweep, label, router;
  std::vector<Stat> cells;              // one per column of EvalTable::columns
  std::optional<double> paper_average;  // the paper's zero-shot average accuracy (%), Table 2
  int64_t limit = 0;                    // zero-shot items per task of the evaluations (0 = all; -1 = mixed)
};

struct EvalTable {
  std::string sweep;
  std::vector<EvalColumn> columns;
  std::vector<EvalPointStat> points;  // the sweep's points in run order, only those evaluated
};

// Which scores a table shows: `remoe eval`'s (eval.json: held-out loss per domain and zero-shot
// accuracy) or the training run's own final held-out eval per domain (summary.json).
enum class EvalSource { remoe_eval, training };

// The table of `sweep`'s runs that have the scores of `source` (none when none has them).
std::optional<EvalTable> eval_table(const std::vector<RunRecord>& runs, const std::string& sweep,
                                    EvalSource source = EvalSource::remoe_eval);

std::string eval_table_markdown(const EvalTable& table);
nlohmann::ordered_json eval_table_json(const EvalTable& table);

}  // namespace remoe::experiments
