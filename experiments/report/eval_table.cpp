#include "experiments/report/eval_table.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/report/paper.h"
#include "experiments/report/render.h"
#include "experiments/sweep/sweep_state.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

void read_eval(const fs::path& file, RunRecord& run) {
  if (!fs::exists(file)) return;
  const ordered_json j = read_json(file);
  REMOE_CHECK(j.is_object() && (j.contains("heldout") || j.contains("zero_shot")), "report: ", file.string(),
              " is not a `remoe eval` result (no \"heldout\" or \"zero_shot\")");
  EvalScores s;
  try {
    s.step = j.value("step", int64_t{0});
    if (j.contains("heldout")) {
      for (const auto& [domain, d] : j.at("heldout").at("domains").items())
        s.domain_loss.emplace_back(domain, d.at("loss").get<double>());
      s.domain_loss.emplace_back("all", j.at("heldout").at("overall").at("loss").get<double>());
    }
    if (j.contains("zero_shot")) {
      s.limit = j.at("zero_shot").value("limit", int64_t{0});
      for (const auto& [task, t] : j.at("zero_shot").at("tasks").items())
        s.task_acc.emplace_back(task, t.at("acc").get<double>());
    }
  } catch (const nlohmann::json::exception& e) {
    fail("report: ", file.string(), " is malformed: ", e.what());
  }
  run.eval = std::move(s);
}

namespace {

// A run's scores from one source, with the run it belongs to.
struct Scored {
  const RunRecord* run;
  const EvalScores* scores;
};

// The value of `key` in a run's scores; "acc:mean" is the mean accuracy over its tasks.
std::optional<double> cell(const EvalScores& s, const std::string& key) {
  if (key == "acc:mean") {
    if (s.task_acc.empty()) return std::nullopt;
    double sum = 0;
    for (const auto& [task, acc] : s.task_acc) sum += acc;
    return sum / static_cast<double>(s.task_acc.size());
  }
  const bool loss = key.rfind("loss:", 0) == 0;
  const std::string name = key.substr(key.find(':') + 1);
  for (const auto& [k, v] : loss ? s.domain_loss : s.task_acc)
    if (k == name) return v;
  return std::nullopt;
}

// Columns in the order the runs' files list them: domains, "all", tasks, then the mean accuracy.
std::vector<EvalColumn> columns_of(const std::vector<Scored>& runs) {
  std::vector<EvalColumn> loss, acc;
  auto add = [](std::vector<EvalColumn>& cols, std::string key, std::string title) {
    if (std::none_of(cols.begin(), cols.end(), [&](const EvalColumn& c) { return c.key == key; }))
      cols.push_back({std::move(key), std::move(title)});
  };
  for (const Scored& r : runs) {
    for (const auto& [domain, v] : r.scores->domain_loss) add(loss, "loss:" + domain, "loss " + domain);
    for (const auto& [task, v] : r.scores->task_acc) add(acc, "acc:" + task, "acc " + task);
  }
  // "all" after every domain, whatever order the files gave.
  std::stable_partition(loss.begin(), loss.end(), [](const EvalColumn& c) { return c.key != "loss:all"; });
  if (!acc.empty()) acc.push_back({"acc:mean", "acc mean"});
  loss.insert(loss.end(), acc.begin(), acc.end());
  return loss;
}

EvalPointStat point_stat(const std::vector<Scored>& runs, const std::vector<EvalColumn>& columns) {
  EvalPointStat p;
  const RunRecord& first = *runs.front().run;
  p.sweep = first.sweep;
  p.label = first.label;
  p.router = first.router;
  p.paper_average = paper_zero_shot_average(first);
  p.limit = runs.front().scores->limit;
  for (const Scored& r : runs)
    if (r.scores->limit != p.limit) p.limit = -1;
  for (const EvalColumn& c : columns) {
    std::vector<double> values;
    for (const Scored& r : runs)
      if (auto v = cell(*r.scores, c.key)) values.push_back(*v);
    p.cells.push_back(mean_std(values));
  }
  return p;
}

}  // namespace

std::optional<EvalTable> eval_table(const std::vector<RunRecord>& runs, const std::string& sweep, EvalSource source) {
  // The sweep's runs with scores, grouped by point in run order.
  std::vector<Scored> scored;
  std::vector<std::vector<Scored>> points;
  for (const RunRecord& r : runs) {
    const std::optional<EvalScores>& s = source == EvalSource::remoe_eval ? r.eval : r.final_eval;
    if (r.sweep != sweep || !s) continue;
    scored.push_back({&r, &*s});
    auto p = std::find_if(points.begin(), points.end(), [&](const auto& p) { return p.front().run->label == r.label; });
    if (p == points.end()) points.push_back({scored.back()});
    else p->push_back(scored.back());
  }
  if (scored.empty()) return std::nullopt;
  EvalTable table{sweep, columns_of(scored), {}};
  for (const auto& of_label : points) table.points.push_back(point_stat(of_label, table.columns));
  return table;
}

std::string eval_table_markdown(const EvalTable& table) {
  const bool zero_shot = std::any_of(table.columns.begin(), table.columns.end(),
                                     [](const EvalColumn& c) { return c.key.rfind("acc:", 0) == 0; });
  std::string head = "| point |", rule = "|---|";
  for (const EvalColumn& c : table.columns) {
    head += fmt::format(" {} |", c.title);
    rule += "---:|";
  }
  if (zero_shot) {
    head += " paper: zero-shot average (%) | zero-shot items per task |";
    rule += "---:|---:|";
  }
  std::string out = head + "\n" + rule + "\n";
  for (const EvalPointStat& p : table.points) {
    out += fmt::format("| {} |", p.label);
    for (const Stat& s : p.cells) out += fmt::format(" {} |", format_stat(s));
    if (zero_shot) {
      out += p.paper_average ? fmt::format(" {:.2f} |", *p.paper_average) : " – |";
      out += p.limit < 0 ? " mixed |" : p.limit == 0 ? " all |" : fmt::format(" {} |", p.limit);
    }
    out += "\n";
  }
  return out;
}

ordered_json eval_table_json(const EvalTable& table) {
  ordered_json out = {{"sweep", table.sweep}, {"columns", ordered_json::array()}, {"points", ordered_json::array()}};
  for (const EvalColumn& c : table.columns) out["columns"].push_back(c.key);
  for (const EvalPointStat& p : table.points) {
    ordered_json cells = ordered_json::array();
    for (const Stat& s : p.cells) cells.push_back({{"n", s.n}, {"mean", s.mean}, {"std", s.std}});
    out["points"].push_back({{"label", p.label}, {"router", p.router}, {"limit", p.limit}, {"cells", cells},
                             {"paper_zero_shot_average", p.paper_average ? ordered_json(*p.paper_average) : ordered_json()}});
  }
  return out;
}

}  // namespace remoe::experiments
