// Zero-shot downstream benchmarks scored as lm-evaluation-harness scores them (the paper's
// evaluation, Table 2): HellaSwag, PIQA, BoolQ (multiple choice by continuation log-likelihood)
// and LAMBADA (OpenAI variant: greedy exact match of the last word, and its perplexity).
//
// Formats follow lm-evaluation-harness v0.4 (the task YAMLs hellaswag/hellaswag.yaml + utils.py,
// piqa/piqa.yaml, super_glue/boolq/default.yaml, lambada/lambada_openai.yaml; HFLM's _encode_pair
// tokenisation; left truncation of the context to the model's length):
//   HellaSwag  context  preprocess("{activity_label}: {ctx_a} {ctx_b.capitalize()}")
//              choices  " " + preprocess(ending)                        metrics acc, acc_norm
//   PIQA       context  "Question: {goal}\nAnswer:"   choices " {sol1}", " {sol2}"   acc, acc_norm
//   BoolQ      context  "{passage}\nQuestion: {question}?\nAnswer:"   choices " no", " yes"   acc
//   LAMBADA    context  text.split(' ')[:-1] joined by ' '   continuation ' ' + last   acc, ppl
// acc picks the choice of highest log-likelihood; acc_norm divides each log-likelihood by the
// length of the choice text without the leading space, in characters (Python len: Unicode code
// points; = bytes for ASCII); ties go to the first choice (np.argmax). LAMBADA ppl is
// exp(−mean over items of the target's log-likelihood), lm-eval's `perplexity` aggregation.
// Stderr is lm-eval's mean_stderr: sqrt(p(1−p)/(n−1)).
//
// The HellaSwag file stores the joined `ctx` = ctx_a + " " + ctx_b, not ctx_b apart, so its
// capitalize() is approximated: a lowercase letter opening the fragment after the context's last
// ". " is uppercased (this is the ActivityNet ctx_b in the data; see hellaswag_capitalize_tail).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/eval/scorer.h"

namespace remoe::data {
class Tokenizer;
}

namespace remoe::eval {

inline constexpr const char* kHarnessFormats =
    "lm-evaluation-harness v0.4 task formats (hellaswag, piqa, boolq, lambada_openai), zero-shot";

struct MultipleChoiceItem {
  std::string context;
  std::vector<std::string> choices;  // without the leading space (the target delimiter)
  int64_t gold = 0;
};

struct LambadaItem {
  std::string context;
  std::string target;  // " " + the last word
};

// <repo>/../shared/eval (where the project keeps the benchmark files; see its README.md).
std::filesystem::path default_eval_dir();

// Readers for the files of shared/eval (README.md there gives their formats). `limit` > 0 keeps
// the first `limit` items. Errors name the file, the line and what is wrong.
std::vector<MultipleChoiceItem> read_hellaswag(const std::filesystem::path& file, int64_t limit = 0);
std::vector<MultipleChoiceItem> read_piqa(const std::filesystem::path& jsonl, const std::filesystem::path& labels,
                                          int64_t limit = 0);
std::vector<MultipleChoiceItem> read_boolq(const std::filesystem::path& jsonl, int64_t limit = 0);
std::vector<LambadaItem> read_lambada(const std::filesystem::path& jsonl, int64_t limit = 0);

// lm-eval's HellaSwag preprocess: strip; " [title]" -> ". "; drop "[...]"; "  " -> " ".
std::string hellaswag_preprocess(std::string_view text);
// Uppercases a lowercase ASCII letter that opens the fragment after the last ". " (see above).
std::string hellaswag_capitalize_tail(std::string_view context);
// lm-eval's lambada_openai split on the last ' '.
LambadaItem split_lambada(std::string_view text);

// Tokenises a (context, continuation) pair as lm-eval's HFLM does: trailing whitespace of the
// context moves to the continuation; the continuation's ids are encode(context + continuation)
// past the first len(encode(context)) ids (so merges across the boundary follow the whole text).
// An empty context gives an empty context (the scorer then conditions on EOD).
ScoreRequest encode_pair(const data::Tokenizer& tokenizer, std::string_view context, std::string_view continuation);

// Number of Unicode code points of a UTF-8 string (Python's len).
int64_t utf8_length(std::string_view s);

struct ChoicePrediction {
  int64_t pred = 0;       // argmax of the log-likelihoods
  int64_t pred_norm = 0;  // argmax of log-likelihood / utf8_length(choice)
};
ChoicePrediction predict_choice(const std::vector<double>& logliks, const std::vector<std::string>& choices);

struct TaskResult {
  std::string task;
  int64_t items = 0;
  double acc = 0, acc_stderr = 0;
  std::optional<double> acc_norm, acc_norm_stderr;
  std::optional<double> ppl;     // LAMBADA
  std::optional<double> chance;  // 1 / number of choices (multiple choice)
};

struct ZeroShotOptions {
  std::filesystem::path dir = default_eval_dir();
  std::vector<std::string> tasks = {"hellaswag", "piqa", "boolq", "lambada_openai"};
  int64_t limit = 0;  // > 0: the first `limit` items of each task
  // Called after each chunk of items is scored (task, items done, items total).
  std::function<void(const std::string&, int64_t, int64_t)> progress;
};

struct ZeroShotResult {
  std::string formats = kHarnessFormats;
  int64_t limit = 0;
  std::vector<TaskResult> tasks;
};

TaskResult eval_multiple_choice(const std::string& task, const std::vector<MultipleChoiceItem>& items,
                                LogLikelihoodScorer& scorer, const data::Tokenizer& tokenizer, bool with_acc_norm,
                                const ZeroShotOptions& options = {});
TaskResult eval_lambada(const std::vector<LambadaItem>& items, LogLikelihoodScorer& scorer,
                        const data::Tokenizer& tokenizer, const ZeroShotOptions& options = {});

// Checks that every file the chosen tasks need is present (throws naming each missing file and
// where to put it) before reading and scoring them.
ZeroShotResult run_zero_shot(LogLikelihoodScorer& scorer, const data::Tokenizer& tokenizer,
                             const ZeroShotOptions& options);

nlohmann::ordered_json to_json(const ZeroShotResult& result);
std::string to_markdown(const ZeroShotResult& result);

}  // namespace remoe::eval
