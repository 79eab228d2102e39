// What `remoe report` writes: report.md (tables), report.json (every number plotted: scaling
// points, pairs, curves), points.csv and pairs.csv; plot.py draws the PNGs from report.json.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/report/summary.h"

namespace remoe::experiments {

// Per sweep: held-out loss per point and router (ours mean ± std (n), the paper's), ReMoE − TopK
// per seed pair (mean ± std, the paper's, in how many seeds ReMoE < TopK); then one row per run.
std::string report_markdown(const ReportData& data, const std::vector<RunRecord>& runs);

// {"sweeps": [{sweep, experiment, scale, rows, routers, points, pairs, curves}]}.
nlohmann::ordered_json report_json(const ReportData& data, const std::vector<RunRecord>& runs);

// sweep,row,label,router,n,mean,std,paper (one line per point) and
// sweep,row,topk_label,relu_label,n,mean_diff,std_diff,paper_diff,held (one line per pair).
std::string points_csv(const ReportData& data);
std::string pairs_csv(const ReportData& data);

// "5.1234 ± 0.0123 (3)", "5.1234 (1)", or "–" when no seed finished.
std::string format_stat(const Stat& s);

}  // namespace remoe::experiments
