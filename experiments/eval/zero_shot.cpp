#include "experiments/eval/zero_shot.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/data/tokenizer.h"

namespace remoe::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Items per scorer call: enough to batch well, few enough to report progress.
constexpr int64_t kChunkItems = 256;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::ifstream open_input(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  REMOE_CHECK(in.good(), "zero-shot eval: cannot open ", file.string(),
              " (the benchmark files are described in shared/eval/README.md)");
  return in;
}

// All lines of a file without their line ends ('\n' or "\r\n"); a final empty line is dropped.
std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in = open_input(file);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// One JSON object per non-empty line, each with its 1-based line number.
std::vector<std::pair<int64_t, json>> read_jsonl(const fs::path& file, int64_t limit) {
  std::vector<std::pair<int64_t, json>> out;
  const std::vector<std::string> lines = read_lines(file);
  for (size_t i = 0; i < lines.size() && (limit <= 0 || static_cast<int64_t>(out.size()) < limit); ++i) {
    if (lines[i].empty()) continue;
    const auto line_no = static_cast<int64_t>(i) + 1;
    json j = json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    REMOE_CHECK(!j.is_discarded() && j.is_object(), "zero-shot eval: ", file.string(), ":", line_no,
                " is not a JSON object");
    out.emplace_back(line_no, std::move(j));
  }
  return out;
}

const json& field(const json& j, const char* key, json::value_t type, const fs::path& file, int64_t line_no) {
  auto it = j.find(key);
  REMOE_CHECK(it != j.end(), "zero-shot eval: ", file.string(), ":", line_no, " has no \"", key, "\" key");
  REMOE_CHECK(it->type() == type, "zero-shot eval: ", file.string(), ":", line_no, " key \"", key,
              "\" has the wrong type (", it->type_name(), ")");
  return *it;
}

std::string str_field(const json& j, const char* key, const fs::path& file, int64_t line_no) {
  return field(j, key, json::value_t::string, file, line_no).get<std::string>();
}

// A small non-negative integer written alone on a line ("3"), checked against [0, n).
int64_t parse_index(const std::string& s, int64_t n, const fs::path& file, int64_t line_no) {
  bool digits = !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  const int64_t v = digits ? std::stoll(s) : -1;
  REMOE_CHECK(digits && v < n, "zero-shot eval: ", file.string(), ":", line_no, " should hold a label in [0, ", n,
              "), found '", s, "'");
  return v;
}

double mean_stderr(double p, int64_t n) { return n > 1 ? std::sqrt(p * (1 - p) / static_cast<double>(n - 1)) : 0.0; }

struct TaskFiles {
  std::string task;
  std::vector<std::pair<std::string, std::string>> files;  // name, what it is and where it comes from
};

const std::vector<TaskFiles>& task_files() {
  static const std::vector<TaskFiles> t = {
      {"hellaswag",
       {{"hellaswag_val.txt",
         "HellaSwag validation (github.com/rowanz/hellaswag data/hellaswag_val.jsonl, written as 6 lines per "
         "item: 'activity_label: ctx', the gold index, the 4 endings)"}}},
      {"piqa",
       {{"piqa_valid.jsonl", "PIQA validation questions (yonatanbisk.com/piqa: valid.jsonl)"},
        {"piqa_valid-labels.lst", "PIQA validation labels (yonatanbisk.com/piqa: valid-labels.lst)"}}},
      {"boolq", {{"boolq_dev.jsonl", "BoolQ dev (github.com/google-research-datasets/boolean-questions: dev.jsonl)"}}},
      {"lambada_openai",
       {{"lambada_test.jsonl", "LAMBADA, OpenAI's test variant (the lambada_openai set of lm-evaluation-harness)"}}},
  };
  return t;
}

}  // namespace

fs::path default_eval_dir() { return (fs::path(REMOE_SOURCE_DIR) / ".." / "shared" / "eval").lexically_normal(); }

std::string hellaswag_preprocess(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  std::string s(text.substr(b, e - b));
  // " [title]" -> ". "
  std::string t;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 8, " [title]") == 0) {
      t += ". ";
      i += 8;
    } else {
      t += s[i++];
    }
  }
  // Drop every "[...]" (a '[' up to the next ']'; a '[' without one stays), like re.sub(r"\[.*?\]", "").
  std::string u;
  for (size_t i = 0; i < t.size();) {
    size_t close = t[i] == '[' ? t.find(']', i + 1) : std::string::npos;
    if (close != std::string::npos) {
      i = close + 1;
    } else {
      u += t[i++];
    }
  }
  // "  " -> " ", one left-to-right pass over non-overlapping pairs (Python's str.replace).
  std::string out;
  for (size_t i = 0; i < u.size();) {
    if (u[i] == ' ' && i + 1 < u.size() && u[i + 1] == ' ') {
      out += ' ';
      i += 2;
    } else {
      out += u[i++];
    }
  }
  return out;
}

std::string hellaswag_capitalize_tail(std::string_view context) {
  std::string s(context);
  const size_t label_end = s.find(": ");
  const size_t from = label_end == std::string::npos ? 0 : label_end + 2;
  const size_t dot = s.rfind(". ");
  if (dot == std::string::npos || dot < from) return s;
  const size_t at = dot + 2;
  if (at < s.size() && s[at] >= 'a' && s[at] <= 'z') s[at] = static_cast<char>(s[at] - 'a' + 'A');
  return s;
}

LambadaItem split_lambada(std::string_view text) {
  const size_t space = text.rfind(' ');
  if (space == std::string_view::npos) return {"", " " + std::string(text)};
  return {std::string(text.substr(0, space)), " " + std::string(text.substr(space + 1))};
}

std::vector<MultipleChoiceItem> read_hellaswag(const fs::path& file, int64_t limit) {
  const std::vector<std::string> lines = read_lines(file);
  REMOE_CHECK(lines.size() % 6 == 0, "zero-shot eval: ", file.string(), " has ", lines.size(),
              " lines, not 6 per item (context, gold index, 4 endings): item ", lines.size() / 6 + 1,
              " is incomplete");
  std::vector<MultipleChoiceItem> items;
  for (size_t i = 0; i + 6 <= lines.size() && (limit <= 0 || static_cast<int64_t>(items.size()) < limit); i += 6) {
    MultipleChoiceItem item;
    REMOE_CHECK(!lines[i].empty(), "zero-shot eval: ", file.string(), ":", i + 1, " has an empty context");
    item.context = hellaswag_preprocess(hellaswag_capitalize_tail(lines[i]));
    item.gold = parse_index(lines[i + 1], 4, file, static_cast<int64_t>(i) + 2);
    for (size_t k = 2; k < 6; ++k) item.choices.push_back(hellaswag_preprocess(lines[i + k]));
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<MultipleChoiceItem> read_piqa(const fs::path& jsonl, const fs::path& labels, int64_t limit) {
  const auto rows = read_jsonl(jsonl, 0);
  const std::vector<std::string> label_lines = read_lines(labels);
  REMOE_CHECK(rows.size() == label_lines.size(), "zero-shot eval: ", jsonl.string(), " has ", rows.size(),
              " items but ", labels.string(), " has ", label_lines.size(), " labels");
  std::vector<MultipleChoiceItem> items;
  for (size_t i = 0; i < rows.size() && (limit <= 0 || static_cast<int64_t>(items.size()) < limit); ++i) {
    const auto& [line_no, j] = rows[i];
    MultipleChoiceItem item;
    item.context = "Question: " + str_field(j, "goal", jsonl, line_no) + "\nAnswer:";
    item.choices = {str_field(j, "sol1", jsonl, line_no), str_field(j, "sol2", jsonl, line_no)};
    item.gold = parse_index(label_lines[i], 2, labels, static_cast<int64_t>(i) + 1);
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<MultipleChoiceItem> read_boolq(const fs::path& jsonl, int64_t limit) {
  std::vector<MultipleChoiceItem> items;
  for (const auto& [line_no, j] : read_jsonl(jsonl, limit)) {
    MultipleChoiceItem item;
    item.context = str_field(j, "passage", jsonl, line_no) + "\nQuestion: " + str_field(j, "question", jsonl, line_no) +
                   "?\nAnswer:";
    item.choices = {"no", "yes"};
    item.gold = field(j, "answer", json::value_t::boolean, jsonl, line_no).get<bool>() ? 1 : 0;
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<LambadaItem> read_lambada(const fs::path& jsonl, int64_t limit) {
  std::vector<LambadaItem> items;
  for (const auto& [line_no, j] : read_jsonl(jsonl, limit)) items.push_back(split_lambada(str_field(j, "text", jsonl, line_no)));
  return items;
}

ScoreRequest encode_pair(const data::Tokenizer& tokenizer, std::string_view context, std::string_view continuation) {
  size_t n = context.size();
  while (n > 0 && is_space(context[n - 1])) --n;
  const std::string ctx(context.substr(0, n));
  const std::string cont = std::string(context.substr(n)) + std::string(continuation);
  ScoreRequest r;
  if (ctx.empty()) {
    r.continuation = tokenizer.encode(cont);
    return r;
  }
  r.context = tokenizer.encode(ctx);
  const std::vector<int32_t> whole = tokenizer.encode(ctx + cont);
  if (whole.size() > r.context.size()) r.continuation.assign(whole.begin() + static_cast<int64_t>(r.context.size()), whole.end());
  // The whole text can merge the continuation into the context's last token; score it apart then.
  if (r.continuation.empty()) r.continuation = tokenizer.encode(cont);
  return r;
}

int64_t utf8_length(std::string_view s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

ChoicePrediction predict_choice(const std::vector<double>& logliks, const std::vector<std::string>& choices) {
  REMOE_CHECK(!logliks.empty() && logliks.size() == choices.size(), "predict_choice: ", logliks.size(),
              " log-likelihoods for ", choices.size(), " choices");
  ChoicePrediction p;
  auto normed = [&](size_t i) { return logliks[i] / static_cast<double>(std::max<int64_t>(1, utf8_length(choices[i]))); };
  for (size_t i = 1; i < logliks.size(); ++i) {
    if (logliks[i] > logliks[static_cast<size_t>(p.pred)]) p.pred = static_cast<int64_t>(i);
    if (normed(i) > normed(static_cast<size_t>(p.pred_norm))) p.pred_norm = static_cast<int64_t>(i);
  }
  return p;
}

TaskResult eval_multiple_choice(const std::string& task, const std::vector<MultipleChoiceItem>& items,
                                LogLikelihoodScorer& scorer, const data::Tokenizer& tokenizer, bool with_acc_norm,
                                const ZeroShotOptions& options) {
  TaskResult r;
  r.task = task;
  r.items = static_cast<int64_t>(items.size());
  REMOE_CHECK(!items.empty(), "zero-shot eval: ", task, " has no items");
  int64_t correct = 0, correct_norm = 0;
  size_t n_choices_total = 0;
  for (size_t lo = 0; lo < items.size(); lo += kChunkItems) {
    const size_t hi = std::min(items.size(), lo + static_cast<size_t>(kChunkItems));
    std::vector<ScoreRequest> requests;
    for (size_t i = lo; i < hi; ++i)
      for (const std::string& choice : items[i].choices) requests.push_back(encode_pair(tokenizer, items[i].context, " " + choice));
    const std::vector<ContinuationScore> scores = scorer.score(requests);
    REMOE_CHECK(scores.size() == requests.size(), "zero-shot eval: the scorer returned ", scores.size(),
                " scores for ", requests.size(), " requests");
    size_t k = 0;
    for (size_t i = lo; i < hi; ++i) {
      std::vector<double> ll;
      for (size_t c = 0; c < items[i].choices.size(); ++c) ll.push_back(scores[k++].logprob);
      const ChoicePrediction p = predict_choice(ll, items[i].choices);
      correct += p.pred == items[i].gold;
      correct_norm += p.pred_norm == items[i].gold;
      n_choices_total += items[i].choices.size();
    }
    if (options.progress) options.progress(task, static_cast<int64_t>(hi), r.items);
  }
  const double n = static_cast<double>(r.items);
  r.acc = static_cast<double>(correct) / n;
  r.acc_stderr = mean_stderr(r.acc, r.items);
  if (with_acc_norm) {
    r.acc_norm = static_cast<double>(correct_norm) / n;
    r.acc_norm_stderr = mean_stderr(*r.acc_norm, r.items);
  }
  r.chance = n / static_cast<double>(n_choices_total);  // mean of 1 / choices (all items have as many)
  return r;
}

TaskResult eval_lambada(const std::vector<LambadaItem>& items, LogLikelihoodScorer& scorer,
                        const data::Tokenizer& tokenizer, const ZeroShotOptions& options) {
  TaskResult r;
  r.task = "lambada_openai";
  r.items = static_cast<int64_t>(items.size());
  REMOE_CHECK(!items.empty(), "zero-shot eval: lambada_openai has no items");
  int64_t correct = 0;
  double loglik = 0;
  for (size_t lo = 0; lo < items.size(); lo += kChunkItems) {
    const size_t hi = std::min(items.size(), lo + static_cast<size_t>(kChunkItems));
    std::vector<ScoreRequest> requests;
    for (size_t i = lo; i < hi; ++i) requests.push_back(encode_pair(tokenizer, items[i].context, items[i].target));
    const std::vector<ContinuationScore> scores = scorer.score(requests);
    REMOE_CHECK(scores.size() == requests.size(), "zero-shot eval: the scorer returned ", scores.size(),
                " scores for ", requests.size(), " requests");
    for (const ContinuationScore& s : scores) {
      correct += s.greedy;
      loglik += s.logprob;
    }
    if (options.progress) options.progress(r.task, static_cast<int64_t>(hi), r.items);
  }
  const double n = static_cast<double>(r.items);
  r.acc = static_cast<double>(correct) / n;
  r.acc_stderr = mean_stderr(r.acc, r.items);
  r.ppl = std::exp(-loglik / n);
  return r;
}

ZeroShotResult run_zero_shot(LogLikelihoodScorer& scorer, const data::Tokenizer& tokenizer,
                             const ZeroShotOptions& options) {
  // Every file first, so that a missing one fails before minutes of scoring.
  std::string missing;
  for (const std::string& task : options.tasks) {
    auto it = std::find_if(task_files().begin(), task_files().end(), [&](const TaskFiles& t) { return t.task == task; });
    if (it == task_files().end()) {
      std::string known;
      for (const TaskFiles& t : task_files()) known += (known.empty() ? "" : ", ") + t.task;
      fail("zero-shot eval: unknown task '", task, "' (known: ", known, ")");
    }
    for (const auto& [name, what] : it->files)
      if (!fs::is_regular_file(options.dir / name))
        missing += "\n  " + (options.dir / name).string() + ": " + what;
  }
  REMOE_CHECK(missing.empty(), "zero-shot eval: missing benchmark file(s):", missing,
              "\nThe benchmark data is not part of the repository: put these files in ", options.dir.string(),
              " (the default is <repo>/../shared/eval, whose README.md gives each file's format) or point the eval "
              "directory option at the folder that holds them.");

  ZeroShotResult result;
  result.limit = options.limit;
  const fs::path& d = options.dir;
  for (const std::string& task : options.tasks) {
    if (task == "hellaswag") {
      result.tasks.push_back(
          eval_multiple_choice(task, read_hellaswag(d / "hellaswag_val.txt", options.limit), scorer, tokenizer, true, options));
    } else if (task == "piqa") {
      result.tasks.push_back(eval_multiple_choice(
          task, read_piqa(d / "piqa_valid.jsonl", d / "piqa_valid-labels.lst", options.limit), scorer, tokenizer, true,
          options));
    } else if (task == "boolq") {
      // lm-eval reports acc only for BoolQ.
      result.tasks.push_back(
          eval_multiple_choice(task, read_boolq(d / "boolq_dev.jsonl", options.limit), scorer, tokenizer, false, options));
    } else {
      result.tasks.push_back(eval_lambada(read_lambada(d / "lambada_test.jsonl", options.limit), scorer, tokenizer, options));
    }
  }
  return result;
}

nlohmann::ordered_json to_json(const ZeroShotResult& result) {
  nlohmann::ordered_json j;
  j["formats"] = result.formats;
  j["limit"] = result.limit;
  nlohmann::ordered_json tasks = nlohmann::ordered_json::object();
  for (const TaskResult& t : result.tasks) {
    nlohmann::ordered_json o;
    o["items"] = t.items;
    o["acc"] = t.acc;
    o["acc_stderr"] = t.acc_stderr;
    if (t.acc_norm) {
      o["acc_norm"] = *t.acc_norm;
      o["acc_norm_stderr"] = *t.acc_norm_stderr;
    }
    if (t.ppl) o["ppl"] = *t.ppl;
    if (t.chance) o["chance"] = *t.chance;
    tasks[t.task] = std::move(o);
  }
  j["tasks"] = std::move(tasks);
  return j;
}

std::string to_markdown(const ZeroShotResult& result) {
  std::string s = "| task | items | metric | value | ± stderr | chance |\n|---|---:|---|---:|---:|---:|\n";
  for (const TaskResult& t : result.tasks) {
    const std::string chance = t.chance ? fmt::format("{:.4f}", *t.chance) : "";
    s += fmt::format("| {} | {} | acc | {:.4f} | {:.4f} | {} |\n", t.task, t.items, t.acc, t.acc_stderr, chance);
    if (t.acc_norm) s += fmt::format("| | | acc_norm | {:.4f} | {:.4f} | {} |\n", *t.acc_norm, *t.acc_norm_stderr, chance);
    if (t.ppl) s += fmt::format("| | | ppl | {:.5g} | | |\n", *t.ppl);
  }
  if (result.limit > 0) s += fmt::format("\n(first {} items of each task only)\n", result.limit);
  return s;
}

}  // namespace remoe::eval
