#include "experiments/report/render.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "experiments/report/eval_table.h"
#include "experiments/report/paper.h"
#include "models/router_registry.h"

namespace remoe::experiments {
using nlohmann::ordered_json;

namespace {

std::string router_title(const std::string& router) {
  const RouterSpec* spec = find_router_spec(router);
  return spec ? spec->label : router;
}

std::string optional_number(const std::optional<double>& v, int digits = 3) {
  return v ? fmt::format("{:.{}f}", *v, digits) : "–";
}

std::vector<std::string> sweeps_in_order(const ReportData& data) {
  std::vector<std::string> out;
  for (const PointStat& p : data.points)
    if (std::find(out.begin(), out.end(), p.sweep) == out.end()) out.push_back(p.sweep);
  return out;
}

std::vector<std::string> rows_of(const ReportData& data, const std::string& sweep) {
  std::vector<std::string> out;
  for (const PointStat& p : data.points)
    if (p.sweep == sweep && std::find(out.begin(), out.end(), p.row) == out.end()) out.push_back(p.row);
  return out;
}

std::vector<std::string> routers_of(const ReportData& data, const std::string& sweep) {
  // In the registry's order (dense, TopK, ReMoE, then the other methods); unregistered names last.
  std::vector<std::string> order = router_names(), out;
  for (const PointStat& p : data.points)
    if (std::find(order.begin(), order.end(), p.router) == order.end()) order.push_back(p.router);
  for (const std::string& r : order)
    for (const PointStat& p : data.points)
      if (p.sweep == sweep && p.router == r && std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  return out;
}

const PointStat* point_at(const ReportData& data, const std::string& sweep, const std::string& row, const std::string& router) {
  for (const PointStat& p : data.points)
    if (p.sweep == sweep && p.row == row && p.router == router) return &p;
  return nullptr;
}

const PairStat* pair_at(const ReportData& data, const std::string& sweep, const std::string& row) {
  for (const PairStat& p : data.pairs)
    if (p.sweep == sweep && p.row == row) return &p;
  return nullptr;
}

std::string per_seed_text(const std::map<int64_t, double>& per_seed) {
  std::string out;
  for (const auto& [seed, v] : per_seed) out += fmt::format("{}s{} {:+.4f}", out.empty() ? "" : ", ", seed, v);
  return out.empty() ? "–" : out;
}

std::string sweep_table(const ReportData& data, const std::string& sweep) {
  const std::vector<std::string> routers = routers_of(data, sweep);
  const bool has_pairs = std::any_of(data.pairs.begin(), data.pairs.end(), [&](const PairStat& p) { return p.sweep == sweep; });
  std::string head = "| point |", rule = "|---|";
  for (const std::string& r : routers) {
    head += fmt::format(" {} (ours) | {} (paper) |", router_title(r), paper_router_name(r));
    rule += "---:|---:|";
  }
  if (has_pairs) {
    head += " ReMoE − TopK (ours) | (paper) | ReMoE < TopK | per seed |";
    rule += "---:|---:|---:|---|";
  }
  std::string out = head + "\n" + rule + "\n";
  for (const std::string& row : rows_of(data, sweep)) {
    out += "| " + row + " |";
    for (const std::string& r : routers) {
      const PointStat* p = point_at(data, sweep, row, r);
      out += p ? fmt::format(" {} | {} |", format_stat(p->loss), optional_number(p->paper)) : " | |";
    }
    if (has_pairs) {
      const PairStat* pair = pair_at(data, sweep, row);
      out += pair ? fmt::format(" {} | {} | {}/{} | {} |", format_stat(pair->diff), optional_number(pair->paper_diff),
                                pair->held, pair->diff.n, per_seed_text(pair->per_seed))
                  : " | | | |";
    }
    out += "\n";
  }
  return out;
}

std::string runs_table(const std::vector<RunRecord>& runs, const std::string& sweep) {
  std::string out = "| run | seed | end | steps | held-out loss | sparsity (last step) | tokens/s |\n|---|---:|---|---:|---:|---:|---:|\n";
  for (const RunRecord& r : runs) {
    if (r.sweep != sweep) continue;
    const int64_t step = r.train_loss.empty() ? 0 : r.train_loss.back().first;
    const RouterSpec* spec = find_router_spec(r.router);
    const bool routes = !spec || spec->routes_tokens;  // a dense FFN has no sparsity
    out += fmt::format("| {} | {} | {} | {}/{} | {} | {} | {} |\n", r.name, r.seed, r.end, step, r.steps,
                       optional_number(r.valid_loss, 4), !routes ? "–" : fmt::format("{:.3f}", r.final_sparsity),
                       r.tokens_per_s > 0 ? fmt::format("{:.0f}", r.tokens_per_s) : "–");
  }
  return out;
}

ordered_json curve_json(const Curve& c) {
  ordered_json out = ordered_json::array();
  for (const auto& [step, v] : c) out.push_back({step, v});
  return out;
}

ordered_json sweep_json(const ReportData& data, const std::vector<RunRecord>& runs, const std::string& sweep) {
  ordered_json s = {{"sweep", sweep}, {"rows", rows_of(data, sweep)}, {"routers", routers_of(data, sweep)}};
  for (const RunRecord& r : runs)
    if (r.sweep == sweep) {
      s["experiment"] = r.experiment;
      s["scale"] = r.scale;
      break;
    }
  s["points"] = ordered_json::array();
  for (const PointStat& p : data.points) {
    if (p.sweep != sweep) continue;
    ordered_json per_seed = ordered_json::object();
    for (const auto& [seed, v] : p.per_seed) per_seed[std::to_string(seed)] = v;
    s["points"].push_back({{"row", p.row}, {"label", p.label}, {"router", p.router}, {"n", p.loss.n}, {"mean", p.loss.mean},
                           {"std", p.loss.std}, {"paper", p.paper ? ordered_json(*p.paper) : ordered_json()},
                           {"per_seed", per_seed}});
  }
  s["pairs"] = ordered_json::array();
  for (const PairStat& p : data.pairs) {
    if (p.sweep != sweep) continue;
    ordered_json per_seed = ordered_json::object();
    for (const auto& [seed, v] : p.per_seed) per_seed[std::to_string(seed)] = v;
    s["pairs"].push_back({{"row", p.row}, {"topk_label", p.topk_label}, {"relu_label", p.relu_label}, {"n", p.diff.n},
                          {"mean", p.diff.mean}, {"std", p.diff.std},
                          {"paper", p.paper_diff ? ordered_json(*p.paper_diff) : ordered_json()}, {"held", p.held},
                          {"per_seed", per_seed}});
  }
  s["curves"] = ordered_json::array();
  for (const RunRecord& r : runs)
    if (r.sweep == sweep)
      s["curves"].push_back({{"name", r.name}, {"label", r.label}, {"router", r.router}, {"seed", r.seed}, {"end", r.end},
                             {"train_loss", curve_json(r.train_loss)}, {"valid_loss", curve_json(r.valid_curve)},
                             {"sparsity", curve_json(r.sparsity)}, {"lambda", curve_json(r.lambda)}});
  return s;
}

std::string csv_number(const std::optional<double>& v) { return v ? fmt::format("{:.6f}", *v) : ""; }

}  // namespace

std::string format_stat(const Stat& s) {
  if (s.n == 0) return "–";
  if (s.n == 1) return fmt::format("{:.4f} (1)", s.mean);
  return fmt::format("{:.4f} ± {:.4f} ({})", s.mean, s.std, s.n);
}

// The headings and reading guides of a sweep's per-domain tables.
constexpr const char* kDomainSection =
    "\n### Held-out loss per domain (each run's final eval in training)\n\nMean ± sample std over the finished "
    "seeds (n); \"all\" is the loss over every held-out token, the points table's number.\n\n";

constexpr const char* kEvalSection =
    "\n### Held-out loss per domain and zero-shot accuracy (`remoe eval`)\n\nMean ± sample std over the evaluated "
    "seeds (n). Accuracies are fractions; the paper's average (in %) is over seven tasks, three of which (ARC-c, "
    "ARC-e, RACE) we do not have, at 182M parameters: at our size the tasks sit near chance (HellaSwag 0.25, PIQA "
    "0.5, BoolQ 0.38 for always \"no\", 0.62 for always \"yes\").\n\n";

std::string report_markdown(const ReportData& data, const std::vector<RunRecord>& runs) {
  std::string out = "# remoe report\n\nFinal held-out loss (all domains) of each point: mean ± sample std over the seeds that "
                    "finished (n). The paper's numbers (validation loss after 30B tokens, docs/experiments.md) are "
                    "at 182M–978M parameters: compare orderings and trends, not values. ReMoE − TopK pairs runs of the "
                    "same seed (same data order); \"ReMoE < TopK\" counts the seeds where the paper's ordering held.\n";
  for (const std::string& sweep : sweeps_in_order(data)) {
    std::string experiment, scale;
    for (const RunRecord& r : runs)
      if (r.sweep == sweep) {
        experiment = r.experiment;
        scale = r.scale;
        break;
      }
    out += fmt::format("\n## {} (experiment {}, scale {})\n\n", sweep, experiment, scale.empty() ? "?" : scale);
    out += sweep_table(data, sweep) + "\n### Runs\n\n" + runs_table(runs, sweep);
    if (const auto table = eval_table(runs, sweep, EvalSource::training))
      out += kDomainSection + eval_table_markdown(*table);
    if (const auto table = eval_table(runs, sweep)) out += kEvalSection + eval_table_markdown(*table);
  }
  return out;
}

ordered_json report_json(const ReportData& data, const std::vector<RunRecord>& runs) {
  ordered_json out = {{"sweeps", ordered_json::array()}};
  for (const std::string& sweep : sweeps_in_order(data)) {
    ordered_json s = sweep_json(data, runs, sweep);
    if (const auto table = eval_table(runs, sweep, EvalSource::training)) s["domains"] = eval_table_json(*table);
    if (const auto table = eval_table(runs, sweep)) s["eval"] = eval_table_json(*table);
    out["sweeps"].push_back(std::move(s));
  }
  return out;
}

std::string points_csv(const ReportData& data) {
  std::string out = "sweep,row,label,router,n,mean,std,paper\n";
  for (const PointStat& p : data.points)
    out += fmt::format("{},{},{},{},{},{:.6f},{:.6f},{}\n", p.sweep, p.row, p.label, p.router, p.loss.n, p.loss.mean,
                       p.loss.std, csv_number(p.paper));
  return out;
}

std::string pairs_csv(const ReportData& data) {
  std::string out = "sweep,row,topk_label,relu_label,n,mean_diff,std_diff,paper_diff,held\n";
  for (const PairStat& p : data.pairs)
    out += fmt::format("{},{},{},{},{},{:.6f},{:.6f},{},{}\n", p.sweep, p.row, p.topk_label, p.relu_label, p.diff.n,
                       p.diff.mean, p.diff.std, csv_number(p.paper_diff), p.held);
  return out;
}

}  // namespace remoe::experiments
