// Text generation: the KV cache computes what the full forward pass computes, sampling follows
// its options, and bad requests get clear errors.
#include <set>

#include "core/random.h"
#include "models/generate.h"
#include "test_util.h"

using namespace remoe;
using namespace remoe::test;

namespace {

ModelConfig small_model(const std::string& router) {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // GQA
  c.ffn = router;
  c.num_experts = 4;
  c.ffn_hidden = 24;
  c.seed = 3;
  return c;
}

}  // namespace

TEST_CASE("KV cache: prompt then one token at a time gives the logits of the full forward pass") {
  for (const RouterSpec& spec : router_registry()) {
    if (!spec.token_local) continue;
    CAPTURE(spec.name);
    Transformer model(small_model(spec.name));
    NoGradGuard guard;
    Generator gen(9);
    Tensor seq = randint({1, 11}, 0, 40, gen);
    Tensor full_logits = model.forward(seq).logits;  // [11, V]
    KVCache cache;
    std::vector<Tensor> pieces = {model.forward(slice(seq, 1, 0, 6), {RouteContext::kEvaluation, &cache}).logits};
    for (int64_t t = 6; t < 11; ++t)
      pieces.push_back(model.forward(slice(seq, 1, t, t + 1), {RouteContext::kEvaluation, &cache}).logits);
    CHECK(cache.length == 11);
    CHECK_CLOSE(cat(pieces, 0), full_logits, 1e-5, 1e-4);
  }
}

TEST_CASE("KV cache is refused for routers that route a token from other tokens") {
  for (const char* router : {"expert_choice", "lory"}) {
    Transformer model(small_model(router));
    KVCache cache;
    CHECK_THROWS_WITH_ALL(model.forward(zeros({1, 3}, {DType::i64}), {RouteContext::kEvaluation, &cache}), router,
                          "KV cache");
  }
}

TEST_CASE("generation: greedy is deterministic and equals argmax decoding; every router generates") {
  for (const std::string& router : router_names()) {
    CAPTURE(router);
    Transformer model(small_model(router));
    SamplingOptions o;
    o.max_new_tokens = 6;
    o.context = 16;
    o.temperature = 0;
    GenerationResult a = generate(model, {1, 2, 3}, o), b = generate(model, {1, 2, 3}, o);
    CHECK(a.tokens == b.tokens);
    REQUIRE(a.tokens.size() == 6);
    CHECK(a.kv_cache == router_spec(router).token_local);
    // The first generated token is the argmax of the prompt's last logits.
    NoGradGuard guard;
    std::vector<float> last = slice(model.forward(from_vector(std::vector<int64_t>{1, 2, 3}, {1, 3})).logits, 0, 2, 3)
                                  .to_vector<float>();
    CHECK(a.tokens[0] == std::max_element(last.begin(), last.end()) - last.begin());
    if (router == "topk") CHECK(a.active_experts == doctest::Approx(1.0));
    if (router == "dense") CHECK(a.active_experts == 0.0);
  }
}

TEST_CASE("sampling: top-k and top-p restrict the candidates; temperature 0 is argmax") {
  const std::vector<float> logits = {0.0f, 3.0f, 1.0f, 2.9f};
  SamplingOptions o;
  o.temperature = 0;
  CHECK(sample_from_logits(logits, o, 0.5) == 1);
  o.temperature = 1;
  o.top_k = 2;
  for (double u : {0.01, 0.3, 0.6, 0.99, 1.0}) {
    const int64_t t = sample_from_logits(logits, o, u);
    CHECK((t == 1 || t == 3));
  }
  o.top_k = 0;
  o.top_p = 0.01;  // only the most likely token
  for (double u : {0.01, 0.5, 1.0}) CHECK(sample_from_logits(logits, o, u) == 1);
  o.top_p = 1.0;  // all four are reachable
  std::set<int64_t> seen;
  for (int i = 1; i <= 1000; ++i) seen.insert(sample_from_logits(logits, o, i / 1000.0));
  CHECK(seen.size() == 4);
}

TEST_CASE("generation: empty prompts, prompts longer than the context and bad options are errors") {
  Transformer model(small_model("relu"));
  SamplingOptions o;
  o.context = 8;
  o.max_new_tokens = 2;
  CHECK_THROWS_WITH_ALL(generate(model, {}, o), "prompt is empty");
  CHECK_THROWS_WITH_ALL(generate(model, std::vector<int64_t>(9, 1), o), "9 tokens", "context of 8");
  CHECK_THROWS_WITH_ALL(generate(model, std::vector<int64_t>(7, 1), o), "exceed", "at most 1");
  CHECK_THROWS_WITH_ALL(generate(model, {1, 99}, o), "token id 99");
  o.top_p = 0;
  CHECK_THROWS_WITH_ALL(generate(model, {1}, o), "top-p");
}
