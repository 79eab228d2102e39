// Tokenizers: a small SentencePiece BPE trained on tests/data/gpl3.txt (round trips, split digits,
// deterministic training) and the GPT-2 BPE against vectors from an independent reference
// (tests/experiments/gpt2_reference.py, checked also against npm gpt-3-encoder's own Encoder.js).
#include <doctest/doctest.h>
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "experiments/data/hash.h"
#include "experiments/data/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace remoe::data;
using remoe::test::read_file_bytes;
using remoe::test::TempDir;

namespace {



const fs::path kGpl3 = REMOE_SOURCE_DIR "/tests/data/gpl3.txt";
const fs::path kGpt2Dir = REMOE_SOURCE_DIR "/.cache/gpt2";
const fs::path kCorpusSample = REMOE_SOURCE_DIR "/tests/data/corpus_sample.jsonl";

// Strings that trip up tokenizers: whitespace runs and control characters, multi-byte UTF-8,
// SentencePiece's own space symbol, NUL, and byte strings that are not UTF-8 at all.
std::vector<std::string> tricky_strings() {
  std::vector<std::string> s = {
      "",
      " ",
      "   ",
      "\n",
      "  leading spaces",
      "trailing spaces   ",
      "tabs\tand\t\tmore\ttabs\t",
      "lines\nand\r\nmore\n\n\nlines\n",
      "runs     of      spaces",
      "Ünïcödé naïve café — “quotes” … ½ ∑ √",
      "日本語のテキスト、中文文本。한국어 텍스트",
      "emoji 😀👍🏽 👨‍👩‍👧 flags 🇩🇪",
      "digits 0123456789 3.14159 1,000,000",
      "the space symbol ▁ itself, ▁▁ twice, and ▁x",
      "x = foo(a, b) + 3.14159;  // comment\n    return y;\n\tif (x) {\n\t\tz();\n\t}",
      "I'll they're she'd we'LL don't 's",
      "\xF0\x9D\x94\xB8 math double-struck, \xE2\x80\x8B zero width, \xC2\xA0nbsp, \x0B vtab, \xC2\x85 nel",
      "invalid \xFF\xFE bytes \xC3 lone lead, \xED\xA0\x80 surrogate, \xC0\xAF overlong, \xF4\x90\x80\x80 too big",
      "\xE2\x96",  // a truncated '▁'
  };
  s.push_back(std::string("embedded\0nul", 12));
  s.push_back(std::string(1000, ' ') + "x" + std::string(300, '\n'));
  return s;
}

// Whether s is valid UTF-8 (lead byte, continuation bytes, no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    const uint32_t min = n == 1 ? 0 : n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// decode(encode(x)) == x, ids in range and never EOD (text cannot produce it).
void check_round_trip(const Tokenizer& tok, const std::string& text, const std::string& label) {
  const std::vector<int32_t> ids = tok.encode(text);
  bool in_range = true;
  for (const int32_t id : ids) in_range = in_range && id >= 0 && id < tok.vocab_size() && id != tok.eod_id();
  CHECK_MESSAGE(in_range, tok.kind(), " ", label, ": id out of range or EOD");
  const std::string back = tok.decode(ids);
  CHECK_MESSAGE(back == text, tok.kind(), " ", label, ": round trip differs (", text.size(), " bytes in, ",
                back.size(), " out)");
}

// A SentencePiece model trained once for the tests (600 pieces on gpl3.txt; a second or so).
TempDir& sentencepiece_dir() {
  static TempDir dir("sp_model");
  return dir;
}
const Tokenizer& small_sentencepiece() {
  static std::unique_ptr<Tokenizer> tok = [] {
    BpeTrainOptions options;
    options.vocab_size = 600;
    train_sentencepiece(kGpl3, sentencepiece_dir().path / "tok", options);
    return load_tokenizer(sentencepiece_dir().path / "tok.model");
  }();
  return *tok;
}

std::unique_ptr<Tokenizer> gpt2() {
  REQUIRE_MESSAGE(fs::exists(kGpt2Dir / "encoder.json"), "the GPT-2 files are missing from ", kGpt2Dir.string(),
                  ": run `make deps` (it runs experiments/data/fetch_gpt2.sh ", kGpt2Dir.string(), ")");
  REQUIRE_MESSAGE(fs::exists(kGpt2Dir / "vocab.bpe"), "the GPT-2 files are missing from ", kGpt2Dir.string(),
                  ": run `make deps`");
  return load_tokenizer(kGpt2Dir);
}

// Each line of the corpus sample: {"domain", "source", "text"}.
std::vector<std::pair<std::string, std::string>> corpus_sample() {
  std::vector<std::pair<std::string, std::string>> docs;
  std::ifstream in(kCorpusSample);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto doc = nlohmann::json::parse(line);
    docs.emplace_back(doc.at("domain").get<std::string>(), doc.at("text").get<std::string>());
  }
  return docs;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SentencePiece

TEST_CASE("sentencepiece: layout of the vocabulary") {
  const Tokenizer& tok = small_sentencepiece();
  CHECK(tok.kind() == "sentencepiece");
  CHECK(tok.vocab_size() == 600);
  CHECK(tok.eod_id() == 1);
  CHECK(tok.decode({tok.eod_id()}).empty());  // EOD is a control piece: no text
  CHECK(tok.decode({2}) == std::string(1, '\0'));  // byte pieces follow <unk> and <eod>
  CHECK(tok.decode({2 + 'A'}) == "A");
  CHECK_THROWS_WITH_ALL(tok.decode({600}), "id 600");
  CHECK_THROWS_WITH_ALL(tok.decode({-3}), "id -3");
}

TEST_CASE("sentencepiece: round trip of gpl3.txt and of tricky strings") {
  const Tokenizer& tok = small_sentencepiece();
  const std::string text = read_file_bytes(kGpl3);
  check_round_trip(tok, text, "gpl3.txt");
  // It has learned something: well under one token per byte on its own training text.
  CHECK(tok.encode(text).size() < text.size() / 2);
  for (const auto& s : tricky_strings()) check_round_trip(tok, s, "\"" + s + "\"");
  // Random byte strings (mostly invalid UTF-8) round-trip too.
  std::mt19937 gen(5);
  for (int n = 0; n < 50; ++n) {
    std::string s(gen() % 64, '\0');
    for (char& c : s) c = static_cast<char>(gen() % 4 == 0 ? ' ' : gen() % 256);
    check_round_trip(tok, s, "random bytes " + std::to_string(n));
  }
}

TEST_CASE("sentencepiece: word-by-word encoding equals SentencePiece's own on whole texts") {
  // Our encoder splits text into cached words; SentencePiece's processor encodes the whole at once.
  const Tokenizer& tok = small_sentencepiece();
  sentencepiece::SentencePieceProcessor processor;
  REQUIRE(processor.Load((sentencepiece_dir().path / "tok.model").string()).ok());
  std::vector<std::string> texts = {read_file_bytes(kGpl3)};
  for (const auto& s : tricky_strings())
    if (valid_utf8(s) && s.find("\xE2\x96\x81") == std::string::npos) texts.push_back(s);  // what SP handles itself
  for (const auto& text : texts) {
    const std::vector<int> theirs = processor.EncodeAsIds(text);
    CHECK_MESSAGE(tok.encode(text) == std::vector<int32_t>(theirs.begin(), theirs.end()), "\"", text, "\"");
  }
}

TEST_CASE("sentencepiece: digits are split, spaces are pieces") {
  const Tokenizer& tok = small_sentencepiece();
  const auto ids = tok.encode("2024");
  REQUIRE(ids.size() == 4);
  for (size_t i = 0; i < ids.size(); ++i) CHECK(tok.decode({ids[i]}) == std::string(1, "2024"[i]));
  // "the" surrounded by spaces is a learned word piece, not letters.
  CHECK(tok.encode(" the").size() == 1);
}

TEST_CASE("sentencepiece: training is deterministic and seeded") {
  TempDir dir("sp_determinism");
  BpeTrainOptions options;
  options.vocab_size = 500;
  options.max_sentences = 300;  // fewer than the file's lines: the seeded sampler picks which
  train_sentencepiece(kGpl3, dir.path / "a", options);
  train_sentencepiece(kGpl3, dir.path / "b", options);
  options.seed = 99;
  train_sentencepiece(kGpl3, dir.path / "c", options);
  const std::string a = read_file_bytes(dir.path / "a.model");
  CHECK(a.size() > 1000);
  CHECK(a == read_file_bytes(dir.path / "b.model"));
  CHECK(read_file_bytes(dir.path / "a.vocab") == read_file_bytes(dir.path / "b.vocab"));
  CHECK(a != read_file_bytes(dir.path / "c.model"));  // another seed samples other lines
  CHECK(load_sentencepiece(dir.path / "c.model")->vocab_size() == 500);
}

TEST_CASE("sentencepiece: bad inputs are named errors") {
  TempDir dir("sp_errors");
  BpeTrainOptions options;
  options.vocab_size = 600;
  CHECK_THROWS_WITH_ALL(train_sentencepiece(dir.path / "none.txt", dir.path / "m", options), "none.txt");
  options.vocab_size = 100;
  CHECK_THROWS_WITH_ALL(train_sentencepiece(kGpl3, dir.path / "m", options), "vocab_size 100");
  options.vocab_size = 100000;  // more pieces than this small text can make
  CHECK_THROWS_WITH_ALL(train_sentencepiece(kGpl3, dir.path / "m", options), "gpl3.txt");
  CHECK_FALSE(fs::exists(dir.path / "m.model"));
  {
    std::ofstream junk(dir.path / "junk.model");
    junk << "not a model";
  }
  CHECK_THROWS_WITH_ALL(load_sentencepiece(dir.path / "junk.model"), "junk.model");
  CHECK_THROWS_WITH_ALL(load_tokenizer(dir.path / "x.txt"), "x.txt", "neither");
  CHECK_THROWS_WITH_ALL(load_tokenizer(dir.path), "encoder.json");
}

// ---------------------------------------------------------------------------------------------
// GPT-2

TEST_CASE("gpt2: vocabulary and EOD") {
  const auto tok = gpt2();
  CHECK(tok->kind() == "gpt2");
  CHECK(tok->vocab_size() == 50257);
  CHECK(tok->eod_id() == 50256);
  CHECK(tok->decode({50256}).empty());
  CHECK(tok->decode({31373, 50256, 995}) == "hello world");
  CHECK_THROWS_WITH_ALL(tok->decode({50257}), "id 50257");
  // The literal text of the EOD token is ordinary text, not EOD.
  const auto ids = tok->encode("<|endoftext|>");
  CHECK(ids.size() > 1);
  CHECK(tok->decode(ids) == "<|endoftext|>");
}

TEST_CASE("gpt2: test vectors") {
  const auto tok = gpt2();
  // From tests/experiments/gpt2_reference.py (identical from npm gpt-3-encoder's Encoder.js).
  const std::vector<std::pair<std::string, std::vector<int32_t>>> vectors = {
      {"hello world", {31373, 995}},
      {"Hello, World! It's 2024; we've got 12345 tokens.",
       {15496, 11, 2159, 0, 632, 338, 48609, 26, 356, 1053, 1392, 17031, 2231, 16326, 13}},
      {"  leading spaces\tand\ttabs\n\nnew lines   \n",
       {220, 3756, 9029, 197, 392, 197, 8658, 82, 198, 198, 3605, 3951, 220, 220, 220, 198}},
      {"Ünïcödé naïve café — “quotes” … 日本語のテキスト 한국어 😀👍🏽",
       {127,   250,   77,    26884, 66,    9101,  67,    2634,  41492, 40304, 851,   564,   250,   421,   6421,
        447,   251,   3926,  10545, 245,   98,    17312, 105,   45739, 252,   5641,  24336, 25084, 43302, 220,
        47991, 250,   166,   113,   255,   168,   244,   112,   30325, 222,   41840, 235,   8582,  237,   121}},
      {"x = foo(a, b) + 3.14159;  // comment\n    return y;",
       {87, 796, 22944, 7, 64, 11, 275, 8, 1343, 513, 13, 1415, 19707, 26, 220, 3373, 2912, 198, 220, 220, 220,
        1441, 331, 26}},
      {"I'll they're she'd we'LL don't", {40, 1183, 484, 821, 673, 1549, 356, 6, 3069, 836, 470}},
  };
  for (const auto& [text, want] : vectors) {
    CHECK_MESSAGE(tok->encode(text) == want, "\"", text, "\"");
    CHECK(tok->decode(want) == text);
  }
  // The whole of gpl3.txt: count and FNV-1a 64 of the ids (int32 LE), from
  // `gpt2_reference.py .cache/gpt2 --file tests/data/gpl3.txt` (Encoder.js agrees).
  const auto ids = tok->encode(read_file_bytes(kGpl3));
  CHECK(ids.size() == 8075);
  CHECK(hex64(fnv1a64(ids.data(), ids.size() * sizeof(int32_t))) == "3944c6ec546d8e04");
}

TEST_CASE("gpt2: round trips") {
  const auto tok = gpt2();
  check_round_trip(*tok, read_file_bytes(kGpl3), "gpl3.txt");
  for (const auto& s : tricky_strings()) check_round_trip(*tok, s, "\"" + s + "\"");
  std::mt19937 gen(6);
  for (int n = 0; n < 50; ++n) {
    std::string s(gen() % 64, '\0');
    for (char& c : s) c = static_cast<char>(gen() % 4 == 0 ? ' ' : gen() % 256);
    check_round_trip(*tok, s, "random bytes " + std::to_string(n));
  }
  // Encoding is the same with a warm cache.
  const std::string text = "the cache must not change the result, the cache";
  CHECK(tok->encode(text) == tok->encode(text));
}

TEST_CASE("gpt2: missing or broken files are named errors") {
  TempDir dir("gpt2_errors");
  CHECK_THROWS_WITH_ALL(load_gpt2(dir.path / "encoder.json", dir.path / "vocab.bpe"), "encoder.json", "make deps");
  {
    std::ofstream bad(dir.path / "encoder.json");
    bad << R"({"a": 0, "b": 5})";
  }
  CHECK_THROWS_WITH_ALL(load_gpt2(dir.path / "encoder.json", dir.path / "vocab.bpe"), "encoder.json", "id 5");
}

// ---------------------------------------------------------------------------------------------
// Both tokenizers on the real corpus sample (tests/data/corpus_sample.jsonl), when it exists.

TEST_CASE("tokenizers: round trip of every document of the corpus sample") {
  if (!fs::exists(kCorpusSample)) {
    MESSAGE("no ", kCorpusSample.string(), ": corpus round trips not run");
    return;
  }
  const auto docs = corpus_sample();
  REQUIRE(!docs.empty());
  const auto g = gpt2();
  std::map<std::string, int> per_domain;
  for (size_t i = 0; i < docs.size(); ++i) {
    const auto& [domain, text] = docs[i];
    ++per_domain[domain];
    const std::string label = domain + " document " + std::to_string(i);
    check_round_trip(small_sentencepiece(), text, label);
    check_round_trip(*g, text, label);
  }
  MESSAGE(docs.size(), " documents in ", per_domain.size(), " domains round-tripped");
}

// Not run by default (`test_experiments -tc='bench: *' --no-skip`): encode speed on gpl3.txt, once
// (a fresh GPT-2 tokenizer: cold cache) and repeated to ~4 MB (warm cache).
TEST_CASE("bench: tokenizer encode speed on gpl3.txt" * doctest::skip()) {
  const std::string once = read_file_bytes(kGpl3);
  std::string big;
  while (big.size() < (4u << 20)) big += once;
  const auto g = gpt2();
  for (const Tokenizer* tok : {&small_sentencepiece(), static_cast<const Tokenizer*>(g.get())}) {
    for (const std::string* text : {&once, static_cast<const std::string*>(&big)}) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ids = tok->encode(*text);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      MESSAGE(tok->kind(), " on ", text->size(), " bytes: ", text->size() / 1e6 / s, " MB/s, ",
              static_cast<double>(text->size()) / static_cast<double>(ids.size()), " bytes/token");
    }
  }
}
