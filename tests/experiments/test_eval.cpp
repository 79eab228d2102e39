// Evaluation: the lm-eval scoring rules on hand-checked examples (fake scorers with known
// log-probabilities), the benchmark readers on inline fixtures, the Transformer scorer against a
// direct log_softmax, and the held-out loss/bpb accounting on a hand-written shard.
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <unistd.h>

#include "experiments/data/shard.h"
#include "experiments/data/tokenizer.h"
#include "experiments/eval/heldout.h"
#include "experiments/eval/scorer.h"
#include "experiments/eval/zero_shot.h"
#include "models/transformer.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::eval;
namespace fs = std::filesystem;
using remoe::test::TempDir;

namespace {

// One id per byte, EOD = 256.
class ByteTokenizer : public data::Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) s += id == 256 ? std::string("<eod>") : std::string(1, static_cast<char>(id));
    return s;
  }
  int32_t vocab_size() const override { return 257; }
  int32_t eod_id() const override { return 256; }
  std::string kind() const override { return "bytes"; }
};

// Bytes, except that "ab" is one token (300): a merge across a context/continuation boundary.
class MergingTokenizer : public ByteTokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text.compare(i, 2, "ab") == 0) {
        ids.push_back(300);
        ++i;
      } else {
        ids.push_back(static_cast<unsigned char>(text[i]));
      }
    }
    return ids;
  }
  int32_t vocab_size() const override { return 301; }
};

// Known log-likelihoods by continuation text; records the decoded requests it was given.
class TableScorer : public LogLikelihoodScorer {
 public:
  std::map<std::string, ContinuationScore> table;
  std::vector<std::pair<std::string, std::string>> seen;  // (context, continuation)
  std::vector<ContinuationScore> score(const std::vector<ScoreRequest>& requests) override {
    ByteTokenizer tok;
    std::vector<ContinuationScore> out;
    for (const ScoreRequest& r : requests) {
      const std::string cont = tok.decode(r.continuation);
      seen.emplace_back(tok.decode(r.context), cont);
      auto it = table.find(cont);
      REQUIRE_MESSAGE(it != table.end(), "no score for continuation '", cont, "'");
      out.push_back(it->second);
    }
    return out;
  }
};


MultipleChoiceItem item(std::string ctx, std::vector<std::string> choices, int64_t gold) {
  return {std::move(ctx), std::move(choices), gold};
}

}  // namespace

TEST_CASE("multiple choice: acc takes the largest log-likelihood, acc_norm divides by the choice's length") {
  // "x" (1 char): ll −2.0, per char −2.0; "longer answer" (13 chars): ll −6.5, per char −0.5.
  // acc picks 0, acc_norm picks 1.
  ChoicePrediction p = predict_choice({-2.0, -6.5}, {"x", "longer answer"});
  CHECK(p.pred == 0);
  CHECK(p.pred_norm == 1);
  // Lengths are characters (code points, Python's len), not bytes: "é" is 2 bytes but length 1.
  CHECK(utf8_length("é") == 1);
  CHECK(utf8_length("naïve café") == 10);
  // "é" −2.9 | "abc" −5.0 | "ab" −4.0. acc: −2.9 is largest → 0. acc_norm: −2.9/1, −5.0/3 ≈ −1.667,
  // −4.0/2 = −2.0 → 1. (Dividing by bytes would give −1.45 for "é" and pick 0.)
  p = predict_choice({-2.9, -5.0, -4.0}, {"é", "abc", "ab"});
  CHECK(p.pred == 0);
  CHECK(p.pred_norm == 1);
  // Ties go to the first choice (np.argmax): per char all −0.5 here.
  p = predict_choice({-1.0, -1.0, -2.0, -2.0}, {"aa", "bb", "cccc", "dddd"});
  CHECK(p.pred == 0);
  CHECK(p.pred_norm == 0);
  CHECK_THROWS_WITH_ALL(predict_choice({-1.0}, {"a", "b"}), "predict_choice", "1 log-likelihoods for 2 choices");
}

TEST_CASE("multiple choice: a task's acc and acc_norm over items scored by a fake scorer") {
  ByteTokenizer tok;
  TableScorer scorer;
  // Item 1 (gold 1): " x" −2.0 | " longer answer" −6.5 → acc wrong (0), acc_norm right (1).
  // Item 2 (gold 0): " yes" −1.0 | " no" −3.0      → acc right, acc_norm: −1/3 vs −3/2 → right.
  // Item 3 (gold 1): " aaaa" −4.0 | " b" −1.5       → acc right (−1.5), acc_norm −1.0 vs −1.5 → wrong.
  scorer.table = {{" x", {-2.0, false}},   {" longer answer", {-6.5, false}}, {" yes", {-1.0, false}},
                  {" no", {-3.0, false}},  {" aaaa", {-4.0, false}},          {" b", {-1.5, false}}};
  std::vector<MultipleChoiceItem> items = {item("Q1", {"x", "longer answer"}, 1), item("Q2", {"yes", "no"}, 0),
                                           item("Q3", {"aaaa", "b"}, 1)};
  TaskResult r = eval_multiple_choice("toy", items, scorer, tok, true);
  CHECK(r.items == 3);
  CHECK(r.acc == doctest::Approx(2.0 / 3));
  REQUIRE(r.acc_norm.has_value());
  CHECK(*r.acc_norm == doctest::Approx(2.0 / 3));
  CHECK(r.acc_stderr == doctest::Approx(std::sqrt((2.0 / 3) * (1.0 / 3) / 2)));
  CHECK(*r.chance == doctest::Approx(0.5));
  // The requests: the context as given, each choice behind one space.
  REQUIRE(scorer.seen.size() == 6);
  CHECK(scorer.seen[0] == std::pair<std::string, std::string>{"Q1", " x"});
  CHECK(scorer.seen[1] == std::pair<std::string, std::string>{"Q1", " longer answer"});
  CHECK(scorer.seen[5] == std::pair<std::string, std::string>{"Q3", " b"});

  TaskResult no_norm = eval_multiple_choice("toy", items, scorer, tok, false);
  CHECK_FALSE(no_norm.acc_norm.has_value());

  ZeroShotResult z;
  z.tasks = {r};
  nlohmann::ordered_json j = to_json(z);
  CHECK(j["tasks"]["toy"]["items"] == 3);
  CHECK(j["tasks"]["toy"]["acc_norm"].get<double>() == doctest::Approx(2.0 / 3));
  const std::string md = to_markdown(z);
  CHECK(md.find("| toy | 3 | acc | 0.6667 |") != std::string::npos);
  CHECK(md.find("| | | acc_norm | 0.6667 |") != std::string::npos);
}

TEST_CASE("LAMBADA: split on the last space; acc is greedy exact match, ppl exp(-mean loglik)") {
  LambadaItem a = split_lambada("He opened the door and saw his friend");
  CHECK(a.context == "He opened the door and saw his");
  CHECK(a.target == " friend");
  LambadaItem b = split_lambada("one");
  CHECK(b.context.empty());
  CHECK(b.target == " one");
  // Only ' ' splits (lm-eval's text.split(' ')): a newline stays inside the last "word".
  LambadaItem c = split_lambada("said \"Hi.\"\n\nThen Mary");
  CHECK(c.context == "said \"Hi.\"\n\nThen");
  CHECK(c.target == " Mary");

  ByteTokenizer tok;
  TableScorer scorer;
  scorer.table = {{" friend", {-1.0, true}}, {" one", {-3.0, false}}, {" Mary", {-2.0, true}}};
  TaskResult r = eval_lambada({a, b, c}, scorer, tok);
  CHECK(r.task == "lambada_openai");
  CHECK(r.acc == doctest::Approx(2.0 / 3));
  REQUIRE(r.ppl.has_value());
  CHECK(*r.ppl == doctest::Approx(std::exp(2.0)));  // mean loglik −2
  CHECK(scorer.seen[1].first.empty());             // empty context: the scorer adds EOD itself
}

TEST_CASE("encode_pair follows lm-eval: trailing context spaces move, continuation ids come from the whole text") {
  ByteTokenizer tok;
  ScoreRequest r = encode_pair(tok, "Answer: ", "yes");
  CHECK(tok.decode(r.context) == "Answer:");
  CHECK(tok.decode(r.continuation) == " yes");
  r = encode_pair(tok, "", " word");
  CHECK(r.context.empty());
  CHECK(tok.decode(r.continuation) == " word");

  MergingTokenizer merge;
  // "xa" + "bc": the whole text is x, [ab], c; the context alone is x, a: the continuation is the
  // whole past two ids, i.e. just "c" (lm-eval's rule, the merged token counted as context).
  r = encode_pair(merge, "xa", "bc");
  CHECK(r.context == std::vector<int32_t>{'x', 'a'});
  CHECK(r.continuation == std::vector<int32_t>{'c'});
  // When the merge would leave nothing, the continuation is encoded on its own.
  r = encode_pair(merge, "xa", "b");
  CHECK(r.continuation == std::vector<int32_t>{'b'});
}

TEST_CASE("HellaSwag preprocessing matches lm-eval's") {
  CHECK(hellaswag_preprocess("  Home: How to cook [title] Boil water. [step] Add salt  ") ==
        "Home: How to cook. Boil water. Add salt");
  CHECK(hellaswag_preprocess("a [b [c] d] e") == "a d] e");  // non-greedy: '[' to the first ']'
  CHECK(hellaswag_preprocess("open [ bracket") == "open [ bracket");
  CHECK(hellaswag_preprocess("a   b") == "a  b");  // one pass, like str.replace("  ", " ")
  CHECK(hellaswag_capitalize_tail("Clean and jerk: A lady walks to a barbell. the lady") ==
        "Clean and jerk: A lady walks to a barbell. The lady");
  CHECK(hellaswag_capitalize_tail("Camel ride: . \" a camel") == "Camel ride: . \" a camel");
  CHECK(hellaswag_capitalize_tail("Label: no sentence end here") == "Label: no sentence end here");
}

TEST_CASE("benchmark readers parse the shared/eval formats") {
  TempDir dir;
  dir.write("hellaswag_val.txt",
            "Roof shingle removal: A man is sitting on a roof. he\n3\nis using wrap.\nis ripping tiles off.\n"
            "is holding a cube.\nstarts pulling up roofing.\n"
            "Home: How to cook [title] Boil water. [step] Add salt\r\n0\r\nStir [substeps] it.\r\nb\r\nc\r\nd\r\n");
  auto hs = read_hellaswag(dir.path / "hellaswag_val.txt");
  REQUIRE(hs.size() == 2);
  CHECK(hs[0].context == "Roof shingle removal: A man is sitting on a roof. He");
  CHECK(hs[0].gold == 3);
  CHECK(hs[0].choices == std::vector<std::string>{"is using wrap.", "is ripping tiles off.", "is holding a cube.",
                                                  "starts pulling up roofing."});
  CHECK(hs[1].context == "Home: How to cook. Boil water. Add salt");
  CHECK(hs[1].choices[0] == "Stir it.");
  CHECK(read_hellaswag(dir.path / "hellaswag_val.txt", 1).size() == 1);

  dir.write("piqa_valid.jsonl",
            "{\"goal\": \"How to dry a cup?\", \"sol1\": \"Use a towel.\", \"sol2\": \"Use water.\"}\n"
            "{\"goal\": \"dresser\", \"sol1\": \"replace drawer \", \"sol2\": \"finish\"}\n");
  dir.write("piqa_valid-labels.lst", "0\n1\n");
  auto pq = read_piqa(dir.path / "piqa_valid.jsonl", dir.path / "piqa_valid-labels.lst");
  REQUIRE(pq.size() == 2);
  CHECK(pq[0].context == "Question: How to dry a cup?\nAnswer:");
  CHECK(pq[0].choices == std::vector<std::string>{"Use a towel.", "Use water."});
  CHECK(pq[0].gold == 0);
  CHECK(pq[1].choices[0] == "replace drawer ");  // kept verbatim (lm-eval strips nothing)
  CHECK(pq[1].gold == 1);

  dir.write("boolq_dev.jsonl",
            "{\"question\": \"is water wet\", \"title\": \"Water\", \"answer\": true, \"passage\": \"Water is a "
            "liquid.\"}\n{\"question\": \"is fire cold\", \"title\": \"Fire\", \"answer\": false, \"passage\": \"Fire "
            "is hot.\"}\n");
  auto bq = read_boolq(dir.path / "boolq_dev.jsonl");
  REQUIRE(bq.size() == 2);
  CHECK(bq[0].context == "Water is a liquid.\nQuestion: is water wet?\nAnswer:");
  CHECK(bq[0].choices == std::vector<std::string>{"no", "yes"});
  CHECK(bq[0].gold == 1);
  CHECK(bq[1].gold == 0);

  dir.write("lambada_test.jsonl", "{\"text\": \"the cat sat on the mat\"}\n{\"text\": \"a b\"}\n");
  auto lb = read_lambada(dir.path / "lambada_test.jsonl", 1);
  REQUIRE(lb.size() == 1);
  CHECK(lb[0].context == "the cat sat on the");
  CHECK(lb[0].target == " mat");

  // Whole pipeline on the fixtures with a table scorer (every continuation scores its length).
  struct LengthScorer : LogLikelihoodScorer {
    std::vector<ContinuationScore> score(const std::vector<ScoreRequest>& rs) override {
      std::vector<ContinuationScore> out;
      for (const auto& r : rs) out.push_back({-static_cast<double>(r.continuation.size()), true});
      return out;
    }
  } length_scorer;
  ByteTokenizer tok;
  ZeroShotOptions opt;
  opt.dir = dir.path;
  ZeroShotResult z = run_zero_shot(length_scorer, tok, opt);
  REQUIRE(z.tasks.size() == 4);
  CHECK(z.tasks[0].task == "hellaswag");
  // ll = −(1 + length): the shortest ending wins acc: item 1 "is using wrap." (index 0, gold 3)
  // wrong; item 2 "b" (index 1, gold 0) wrong. acc_norm −(1 + len)/len: the longest wins: item 1
  // "starts pulling up roofing." (3) right, item 2 "Stir it." (0) right.
  CHECK(z.tasks[0].acc == 0.0);
  CHECK(*z.tasks[0].acc_norm == 1.0);
  CHECK(z.tasks[2].task == "boolq");
  CHECK(z.tasks[2].acc == 0.5);  // " no" is shorter: right on item 2 only
  CHECK_FALSE(z.tasks[2].acc_norm.has_value());
  CHECK(z.tasks[3].task == "lambada_openai");
  CHECK(z.tasks[3].acc == 1.0);
  CHECK(*z.tasks[3].ppl == doctest::Approx(std::exp((4.0 + 2.0) / 2)));  // " mat", " b"
  opt.limit = 1;
  opt.tasks = {"piqa"};
  ZeroShotResult one = run_zero_shot(length_scorer, tok, opt);
  CHECK(one.tasks.at(0).items == 1);
  CHECK(to_json(one)["limit"] == 1);
}

TEST_CASE("benchmark readers: clear errors for missing and malformed files") {
  TempDir dir;
  TableScorer scorer;
  ByteTokenizer tok;
  ZeroShotOptions opt;
  opt.dir = dir.path / "nowhere";
  CHECK_THROWS_WITH_ALL(run_zero_shot(scorer, tok, opt), "missing benchmark file", "hellaswag_val.txt",
                        "lambada_test.jsonl", "piqa_valid-labels.lst", "boolq_dev.jsonl", "shared/eval", "README.md");
  opt.tasks = {"arc_easy"};
  CHECK_THROWS_WITH_ALL(run_zero_shot(scorer, tok, opt), "unknown task 'arc_easy'", "hellaswag");

  dir.write("h.txt", "ctx\n1\na\nb\nc\n");
  CHECK_THROWS_WITH_ALL(read_hellaswag(dir.path / "h.txt"), "h.txt", "5 lines", "item 1");
  dir.write("h2.txt", "ctx\n7\na\nb\nc\nd\n");
  CHECK_THROWS_WITH_ALL(read_hellaswag(dir.path / "h2.txt"), "h2.txt:2", "[0, 4)", "'7'");
  dir.write("p.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n");
  dir.write("p.lst", "0\n1\n");
  CHECK_THROWS_WITH_ALL(read_piqa(dir.path / "p.jsonl", dir.path / "p.lst"), "1 items", "2 labels");
  dir.write("b.jsonl", "{\"question\": \"q\", \"passage\": \"p\"}\n");
  CHECK_THROWS_WITH_ALL(read_boolq(dir.path / "b.jsonl"), "b.jsonl:1", "\"answer\"");
  dir.write("l.jsonl", "{\"text\": \"ok\"}\nnot json\n");
  CHECK_THROWS_WITH_ALL(read_lambada(dir.path / "l.jsonl"), "l.jsonl:2", "not a JSON object");
  CHECK_THROWS_WITH_ALL(read_lambada(dir.path / "absent.jsonl"), "cannot open", "absent.jsonl");
}

TEST_CASE("the shared/eval files, when present, read with the documented item counts") {
  const fs::path d = default_eval_dir();
  if (!fs::exists(d / "hellaswag_val.txt")) {
    MESSAGE("skipped: no benchmark files in ", d.string());
    return;
  }
  CHECK(read_hellaswag(d / "hellaswag_val.txt").size() == 10042);
  CHECK(read_lambada(d / "lambada_test.jsonl").size() == 5153);
  CHECK(read_piqa(d / "piqa_valid.jsonl", d / "piqa_valid-labels.lst").size() == 1838);
  CHECK(read_boolq(d / "boolq_dev.jsonl").size() == 3270);
}

TEST_CASE("scoring_windows truncates the context from the left like lm-eval; long continuations split") {
  ScoreRequest r;
  r.context = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  r.continuation = {11, 12};
  std::vector<ScoringWindow> w = scoring_windows(r, 5, 0);
  REQUIRE(w.size() == 1);
  CHECK(w[0].input == std::vector<int64_t>{7, 8, 9, 10, 11});  // full[-6:][:-1]
  CHECK(w[0].first_pred == 3);                                // position 3 (token 10) predicts 11
  CHECK(w[0].cont_begin == 0);
  CHECK(w[0].count == 2);
  w = scoring_windows(r, 64, 0);
  REQUIRE(w.size() == 1);
  CHECK(w[0].input.size() == 11);
  CHECK(w[0].first_pred == 9);
  r.context.clear();
  w = scoring_windows(r, 64, 99);
  REQUIRE(w.size() == 1);
  CHECK(w[0].input == std::vector<int64_t>{99, 11});
  CHECK(w[0].first_pred == 0);
  // Continuation of 6 > seq_len 4: full = 1..9, targets 4..9 in groups [6..9] and [4, 5].
  r.context = {1, 2, 3};
  r.continuation = {4, 5, 6, 7, 8, 9};
  w = scoring_windows(r, 4, 0);
  REQUIRE(w.size() == 2);
  CHECK(w[0].input == std::vector<int64_t>{5, 6, 7, 8});  // predicts 6, 7, 8, 9
  CHECK(w[0].first_pred == 0);
  CHECK(w[0].cont_begin == 2);
  CHECK(w[0].count == 4);
  CHECK(w[1].input == std::vector<int64_t>{1, 2, 3, 4});  // positions 2, 3 predict 4, 5
  CHECK(w[1].first_pred == 2);
  CHECK(w[1].cont_begin == 0);
  CHECK(w[1].count == 2);
  r.continuation.clear();
  CHECK_THROWS_WITH_ALL(scoring_windows(r, 4, 0), "empty continuation");
}

TEST_CASE("TransformerScorer agrees with a direct log_softmax over the model's logits") {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn = "relu";
  c.num_experts = 4;
  c.ffn_hidden = 32;
  c.seed = 7;
  Transformer model(c);
  // Larger weights than the init so that the distributions are far from uniform.
  for (Tensor& p : model.parameters()) {
    NoGradGuard g;
    copy_(p, mul(p, 20.0));
  }
  const int64_t seq_len = 12;
  const int32_t eod = 39;
  Generator gen(3);
  std::vector<ScoreRequest> requests;
  for (int n_ctx : {0, 1, 3, 7, 11, 15, 30, 5}) {
    ScoreRequest r;
    for (int i = 0; i < n_ctx; ++i) r.context.push_back(static_cast<int32_t>((i * 7 + n_ctx) % 39));
    // Continuations of 1 to 4 tokens, and one of 30 (longer than seq_len: three windows).
    const int n_cont = n_ctx == 5 ? 30 : 1 + n_ctx % 4;
    for (int i = 0; i < n_cont; ++i) r.continuation.push_back(static_cast<int32_t>((i * 5 + 3 * n_ctx) % 40));
    requests.push_back(r);
  }
  // One greedy continuation: each token the argmax after the previous ones.
  {
    ScoreRequest r;
    r.context = {1, 2, 3};
    std::vector<int64_t> seq = {1, 2, 3};
    for (int i = 0; i < 3; ++i) {
      NoGradGuard g;
      Tensor logits = model.forward(from_vector(seq, {1, static_cast<int64_t>(seq.size())})).logits;
      Tensor last = select(logits, 0, static_cast<int64_t>(seq.size()) - 1);
      seq.push_back(static_cast<int64_t>(argmax(last, 0).item()));
      r.continuation.push_back(static_cast<int32_t>(seq.back()));
    }
    requests.push_back(r);
  }

  // The reference: each window of each request alone, log_softmax by the op, summed at the
  // continuation's targets.
  std::vector<ContinuationScore> expected;
  for (const ScoreRequest& r : requests) {
    NoGradGuard g;
    ContinuationScore s{0, true};
    for (const ScoringWindow& w : scoring_windows(r, seq_len, eod)) {
      const auto T = static_cast<int64_t>(w.input.size());
      Tensor logp = log_softmax(model.forward(from_vector(w.input, {1, T})).logits.to(DType::f64), -1);
      Tensor top = argmax(logp, -1);
      for (int64_t j = 0; j < w.count; ++j) {
        const int64_t pos = w.first_pred + j, target = r.continuation[static_cast<size_t>(w.cont_begin + j)];
        s.logprob += select(select(logp, 0, pos), 0, target).item();
        s.greedy = s.greedy && static_cast<int64_t>(select(top, 0, pos).item()) == target;
      }
    }
    expected.push_back(s);
  }
  // The long request's windows cover its 30 tokens once.
  int64_t covered = 0;
  for (const ScoringWindow& w : scoring_windows(requests[7], seq_len, eod)) covered += w.count;
  CHECK(covered == 30);
  CHECK(expected.back().greedy);
  CHECK_FALSE(expected.front().greedy);

  for (int64_t batch : {1, 3, 16}) {
    CAPTURE(batch);
    TransformerScorer scorer(model, {seq_len, eod, batch});
    std::vector<ContinuationScore> got = scorer.score(requests);
    REQUIRE(got.size() == requests.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].logprob == doctest::Approx(expected[i].logprob).epsilon(1e-5));
      CHECK(got[i].greedy == expected[i].greedy);
    }
  }
  TransformerScorer scorer(model, {seq_len, eod, 4});
  CHECK_THROWS_WITH_ALL(scorer.score({ScoreRequest{{1}, {45}}}), "token id 45", "[0, 40)");
  CHECK_THROWS_WITH_ALL(TransformerScorer(model, {seq_len, 40, 4}), "eod_id = 40");
}

namespace {

// A shard of hand-written documents: (tokens without EOD, domain, n_bytes).
struct Doc {
  std::vector<int32_t> tokens;
  uint32_t domain;
  uint64_t bytes;
};

fs::path write_shard(const TempDir& dir, const std::vector<Doc>& docs, uint32_t vocab, int32_t eod) {
  const fs::path p = dir.path / "valid.bin";
  data::ShardWriter w(p, vocab);
  for (const Doc& d : docs) {
    std::vector<int32_t> t = d.tokens;
    t.push_back(eod);
    w.add_document(t, d.domain, d.bytes);
  }
  w.finish();
  return p;
}

// Logits that depend on the current input token only: the successor (x + 1) mod V gets logit K,
// every other token 0. log p(t | x) = K − log(e^K + V − 1) if t is the successor, else −log(e^K + V − 1).
constexpr int64_t kV = 10;
constexpr double kK = 3.0;
double successor_logprob(int64_t x, int64_t t) {
  const double lse = std::log(std::exp(kK) + kV - 1);
  return (t == (x + 1) % kV ? kK : 0.0) - lse;
}
Tensor successor_logits(const Tensor& tokens) {
  std::vector<int64_t> ids = tokens.to_vector<int64_t>();
  std::vector<float> out(ids.size() * kV, 0.0f);
  for (size_t i = 0; i < ids.size(); ++i) out[i * kV + static_cast<size_t>((ids[i] + 1) % kV)] = static_cast<float>(kK);
  return from_vector(out, {static_cast<int64_t>(ids.size()), kV});
}

}  // namespace

TEST_CASE("held-out eval: every token predicted once, after its true predecessor, counted for its domain") {
  TempDir dir;
  const int32_t eod = 9;
  // Documents (EOD appended): A = 1 2 3 |9, B = 4 6 |9, C = 0 1 2 3 4 |9, D = 7 |9; domains 0 1 0 2.
  const std::vector<Doc> docs = {{{1, 2, 3}, 0, 5}, {{4, 6}, 1, 7}, {{0, 1, 2, 3, 4}, 0, 11}, {{7}, 2, 2}};
  data::Shard shard = data::Shard::open(write_shard(dir, docs, kV, eod));
  const std::vector<std::string> names = {"web", "code", "books"};

  // Reference: walk the stream EOD + documents; each token is predicted from the token before it.
  std::vector<double> nll(3, 0.0);
  std::vector<int64_t> count(3, 0);
  int64_t prev = eod;
  for (const Doc& d : docs) {
    std::vector<int32_t> t = d.tokens;
    t.push_back(eod);
    for (int32_t x : t) {
      nll[d.domain] -= successor_logprob(prev, x);
      count[d.domain] += 1;
      prev = x;
    }
  }
  CHECK(count == std::vector<int64_t>{10, 3, 2});

  for (int64_t L : {1, 3, 4, 15, 64}) {
    for (int64_t B : {1, 2, 5}) {
      CAPTURE(L);
      CAPTURE(B);
      HeldoutResult r = heldout_eval(successor_logits, kV, shard, names, {L, B, 0, -1});
      REQUIRE(r.domains.size() == 3);
      for (size_t d = 0; d < 3; ++d) {
        CHECK(r.domains[d].domain == names[d]);
        CHECK(r.domains[d].tokens == count[d]);
        CHECK(r.domains[d].nll == doctest::Approx(nll[d]).epsilon(1e-6));
        CHECK(r.domains[d].loss == doctest::Approx(nll[d] / static_cast<double>(count[d])).epsilon(1e-6));
      }
      CHECK(r.domains[0].documents == 2);
      CHECK(r.domains[0].bytes == 16);
      CHECK(r.domains[1].bpb == doctest::Approx(nll[1] / std::log(2.0) / 7).epsilon(1e-6));
      CHECK(r.overall.tokens == 15);
      CHECK(r.overall.bytes == 25);
      CHECK(r.overall.loss == doctest::Approx((nll[0] + nll[1] + nll[2]) / 15).epsilon(1e-6));
      CHECK(r.overall.bpb == doctest::Approx((nll[0] + nll[1] + nll[2]) / std::log(2.0) / 25).epsilon(1e-6));
    }
  }

  // A uniform model: loss ln V per token everywhere, bpb = tokens·ln V / ln 2 / bytes.
  auto uniform = [](const Tensor& tokens) { return zeros({tokens.numel(), kV}); };
  HeldoutResult u = heldout_eval(uniform, kV, shard, names, {4, 2, 0, -1});
  CHECK(u.overall.loss == doctest::Approx(std::log(10.0)));
  CHECK(u.domains[2].bpb == doctest::Approx(2 * std::log(10.0) / std::log(2.0) / 2));

  // Budget: domain 0 takes documents while it has fewer than 4 tokens: A (4 tokens), then stops.
  HeldoutResult capped = heldout_eval(successor_logits, kV, shard, names, {3, 2, 4, -1});
  CHECK(capped.domains[0].documents == 1);
  CHECK(capped.domains[0].tokens == 4);
  CHECK(capped.domains[0].bytes == 5);
  CHECK(capped.domains[1].tokens == 3);
  CHECK(capped.overall.tokens == 9);
  nlohmann::ordered_json j = to_json(capped);
  CHECK(j["domains"]["web"]["tokens"] == 4);
  CHECK(j["overall"]["tokens"] == 9);
  CHECK(to_markdown(capped).find("| web | 1 | 4 | 5 |") != std::string::npos);

  CHECK_THROWS_WITH_ALL(heldout_eval(successor_logits, kV, shard, {"web", "code"}, {4, 2, 0, -1}), "domain 2",
                        "2 domain names");
  CHECK_THROWS_WITH_ALL(heldout_eval(successor_logits, kV, shard, names, {0, 2, 0, -1}), "seq_len = 0");
}

TEST_CASE("held-out eval of a Transformer equals its cross-entropy over the same windows") {
  TempDir dir;
  ModelConfig c;
  c.vocab_size = 16;
  c.d_model = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.ffn = "dense";
  c.ffn_hidden = 32;
  c.seed = 5;
  Transformer model(c);
  for (Tensor& p : model.parameters()) {
    NoGradGuard g;
    copy_(p, mul(p, 20.0));
  }
  const int32_t eod = 15;
  // 3 + 4 + 5 = 12 document tokens behind the leading EOD: with L = 4, exactly 3 full windows.
  const std::vector<Doc> docs = {{{1, 2}, 0, 2}, {{3, 4, 5}, 1, 3}, {{6, 7, 8, 9}, 0, 4}};
  data::Shard shard = data::Shard::open(write_shard(dir, docs, 16, eod));
  HeldoutResult r = heldout_eval(model, shard, {"a", "b"}, {4, 2, 0, -1});
  CHECK(r.overall.tokens == 12);
  std::vector<int64_t> stream = {eod, 1, 2, eod, 3, 4, 5, eod, 6, 7, 8, 9, eod};
  std::vector<int64_t> in, tg;
  for (int w = 0; w < 3; ++w)
    for (int t = 0; t < 4; ++t) {
      in.push_back(stream[static_cast<size_t>(w * 4 + t)]);
      tg.push_back(stream[static_cast<size_t>(w * 4 + t + 1)]);
    }
  NoGradGuard g;
  Tensor logits = model.forward(from_vector(in, {3, 4})).logits.to(DType::f64);
  const double ce = cross_entropy(logits, from_vector(tg, {12})).item();
  CHECK(r.overall.loss == doctest::Approx(ce).epsilon(1e-5));
}
