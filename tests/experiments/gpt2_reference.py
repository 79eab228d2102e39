#!/usr/bin/python3
"""A small, independent reference of the GPT-2 byte-level BPE, used to make the test vectors in
test_tokenizer.cpp. The C++ tokenizer splits text with an ICU regex; this one splits it with a
hand-written scanner of the same pattern (so the two pre-tokenizers are checked against each other):

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

with \\s = the Unicode White_Space property (as in OpenAI's encoder.py, which uses the `regex`
module), \\p{L}/\\p{N} = general categories L*/N*.

Usage: gpt2_reference.py DIR [TEXT...]   (DIR holds encoder.json and vocab.bpe; default texts are
the test strings). Prints one line per text: the text as a C++ literal and its ids.
       gpt2_reference.py DIR --file PATH   prints the number of ids of the file's text and the
FNV-1a 64 hash of the ids as little-endian int32 (what the C++ test compares for tests/data/gpl3.txt).
Needs only the Python standard library (run it with /usr/bin/python3).
"""
import json
import sys
import unicodedata

WHITE_SPACE = set(range(0x9, 0xE)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} \
    | set(range(0x2000, 0x200B))


def is_space(c):
    return ord(c) in WHITE_SPACE


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def is_other(c):
    return not (is_space(c) or is_letter(c) or is_number(c))


def pretokenize(text):
    """Scans the pattern's alternatives in order at each position, as a backtracking regex would."""
    out, i, n = [], 0, len(text)
    while i < n:
        end = None
        for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(c, i):
                end = i + len(c)
                break
        if end is None:
            for cls in (is_letter, is_number, is_other):
                j = i + 1 if text[i] == " " and i + 1 < n and cls(text[i + 1]) else i
                if j < n and cls(text[j]):
                    while j < n and cls(text[j]):
                        j += 1
                    end = j
                    break
        if end is None:  # \s+(?!\S), then \s+
            j = i
            while j < n and is_space(text[j]):
                j += 1
            end = j if j == n or j - 1 == i else j - 1
        out.append(text[i:end])
        i = end
    return out


def bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Gpt2:
    def __init__(self, folder):
        with open(folder + "/encoder.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(folder + "/vocab.bpe", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:-1]
        self.ranks = {tuple(line.split()): r for r, line in enumerate(lines)}
        self.byte_map = bytes_to_unicode()

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = {(parts[k], parts[k + 1]) for k in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, k = [], 0
            while k < len(parts):
                if k + 1 < len(parts) and (parts[k], parts[k + 1]) == best:
                    merged.append(parts[k] + parts[k + 1])
                    k += 2
                else:
                    merged.append(parts[k])
                    k += 1
            parts = merged
        return parts

    def encode(self, text):
        ids = []
        for piece in pretokenize(text):
            word = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            ids += [self.encoder[p] for p in self.bpe(word)]
        return ids


TEXTS = [
    "hello world",
    "Hello, World! It's 2024; we've got 12345 tokens.",
    "  leading spaces\tand\ttabs\n\nnew lines   \n",
    "Ünïcödé naïve café — “quotes” … 日本語のテキスト 한국어 😀👍🏽",
    "x = foo(a, b) + 3.14159;  // comment\n    return y;",
    "I'll they're she'd we'LL don't",
]


def cpp_literal(text):
    """The text as a C++ string literal (UTF-8 kept as is; control characters escaped)."""
    named = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return '"' + "".join(named.get(c, c) for c in text) + '"'


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


if __name__ == "__main__":
    tok = Gpt2(sys.argv[1])
    if sys.argv[2:3] == ["--file"]:
        with open(sys.argv[3], encoding="utf-8", newline="") as f:
            ids = tok.encode(f.read())
        print(len(ids), "%016x" % fnv1a64(b"".join(i.to_bytes(4, "little") for i in ids)))
    else:
        for text in sys.argv[2:] or TEXTS:
            print(cpp_literal(text), tok.encode(text))
