"""Unit tests of the corpus builder (experiments/corpus): pure functions on tiny in-memory
fixtures, plus one end-to-end build with fake sources. Standard library only, no network.

  python3 -m unittest discover -s tests/corpus -v      (from the repository root)
"""
import contextlib
import gzip
import io
import json
import os
import struct
import sys
import tempfile
import unittest
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "experiments", "corpus"))

import build_corpus  # noqa: E402
import dictd  # noqa: E402
import extract  # noqa: E402
import rserialize  # noqa: E402
import sources  # noqa: E402
import splits  # noqa: E402
import sword  # noqa: E402
import textclean  # noqa: E402


class HoldoutTest(unittest.TestCase):
    def test_fraction_close_to_requested(self):
        keys = [("src", f"doc{i}") for i in range(20000)]
        held = splits.assign_splits(keys, seed=1234, fraction=0.05).count("valid") / len(keys)
        self.assertGreater(held, 0.042)  # 5 standard deviations of a binomial either side
        self.assertLess(held, 0.058)

    def test_decision_depends_on_document_not_on_order_or_neighbours(self):
        keys = [("src", f"doc{i}") for i in range(500)]
        a = dict(zip(keys, splits.assign_splits(keys, 7, 0.1)))
        rev = list(reversed(keys))[:300]  # another order, fewer documents
        b = dict(zip(rev, splits.assign_splits(rev, 7, 0.1)))
        for k in rev:
            self.assertEqual(a[k], b[k], k)

    def test_seed_and_source_change_the_split(self):
        keys = [("src", f"doc{i}") for i in range(2000)]
        s1 = splits.assign_splits(keys, 1, 0.05)
        s2 = splits.assign_splits(keys, 2, 0.05)
        self.assertNotEqual(s1, s2)
        other = splits.assign_splits([("other", d) for _, d in keys], 1, 0.05)
        self.assertNotEqual(s1, other)
        self.assertEqual(s1, splits.assign_splits(keys, 1, 0.05))  # and it is repeatable

    def test_tiny_domain_still_gets_one_valid_and_one_train_document(self):
        keys = [("s", "a"), ("s", "b"), ("s", "c")]
        got = splits.assign_splits(keys, 1, 1e-12)
        self.assertEqual(got.count("valid"), 1)
        got = splits.assign_splits(keys, 1, 0.999999)
        self.assertGreaterEqual(got.count("train"), 1)
        self.assertEqual(splits.assign_splits([("s", "a")], 1, 0.05), ["train"])
        self.assertEqual(splits.assign_splits(keys, 1, 0.0), ["train"] * 3)

    def test_sampling_does_not_skew_the_holdout(self):
        # A cap keeps the first documents in sampling order; that must not be the held-out ones.
        cands = [("src", f"doc{i}") for i in range(20000)]
        kept = splits.sample_order(cands, 1234)[:4000]
        held = splits.assign_splits(kept, 1234, 0.05).count("valid") / len(kept)
        self.assertGreater(held, 0.035)
        self.assertLess(held, 0.065)

    def test_unit_hash_is_in_unit_interval(self):
        for i in range(100):
            h = splits.unit_hash("holdout", i, "s", str(i))
            self.assertTrue(0 <= h < 1)


class BudgetTest(unittest.TestCase):
    def test_water_fill_gives_small_pools_everything(self):
        b = splits.water_fill({"go": 10, "c": 700, "rust": 100}, 210)
        self.assertEqual(b["go"], 10)
        self.assertAlmostEqual(b["rust"], 100)
        self.assertAlmostEqual(b["c"], 100)
        b = splits.water_fill({"go": 10, "c": 700, "rust": 100}, 10_000)
        self.assertEqual(b, {"go": 10, "c": 700, "rust": 100})
        self.assertAlmostEqual(sum(splits.water_fill({"a": 5, "b": 50, "c": 60}, 40).values()), 40)

    def test_parse_upsample(self):
        self.assertEqual(splits.parse_upsample("books=2,bio=3"), {"books": 2, "bio": 3})
        self.assertEqual(splits.parse_upsample("none"), {})
        for bad in ("books", "books=0", "books=x", "=2"):
            with self.assertRaises(ValueError):
                splits.parse_upsample(bad)


class ChunkTest(unittest.TestCase):
    def test_short_text_is_one_chunk(self):
        self.assertEqual(textclean.chunk_text("a\n\nb", 100), ["a\n\nb"])

    def test_chunks_respect_size_and_paragraphs(self):
        paras = [f"Paragraph {i} " + "word " * (i % 17 + 3) for i in range(300)]
        paras = [p.strip() for p in paras]
        text = "\n\n".join(paras)
        chunks = textclean.chunk_text(text, 1000)
        self.assertGreater(len(chunks), 5)
        for c in chunks:
            self.assertLessEqual(textclean.utf8_len(c), 1000)
            self.assertTrue(c.startswith("Paragraph "), c[:30])  # cut at paragraph boundaries
        self.assertEqual("\n\n".join(chunks), text)

    def test_long_paragraph_falls_back_to_lines_words_and_characters(self):
        text = "intro\n\n" + " ".join(["naïve"] * 1000) + "\n\n" + "é" * 3000
        chunks = textclean.chunk_text(text, 500)
        for c in chunks:
            self.assertLessEqual(textclean.utf8_len(c), 500)
        self.assertEqual("".join(chunks).replace(" ", "").replace("\n", ""),
                         text.replace(" ", "").replace("\n", ""))

    def test_group_records_packs_small_records(self):
        recs = [f"term{i}: a definition of it" for i in range(100)]
        groups = textclean.group_records(recs + ["", "  "], 300)
        self.assertEqual("\n\n".join(groups).split("\n\n"), recs)
        self.assertTrue(all(textclean.utf8_len(g) <= 300 for g in groups))


class CleaningTest(unittest.TestCase):
    def test_osis(self):
        osis = ('<title type="main">Genesis</title><div sID="g1" type="x-p"/>'
                '<w lemma="strong:H1">In</w> <w>the</w> <w>beginning</w>, <w>Yahweh</w>'
                '<note placement="foot"><reference>1:1 </reference>A name.</note><w>his</w> '
                '<w>God</w>,<note placement="foot">x</note>and &amp; more.<div eID="g1" type="x-p"/>'
                '<lg><l>line one</l><l>line two</l></lg><chapter osisID="Gen.2"/>Next.')
        self.assertEqual(textclean.strip_osis(osis),
                         "Genesis\n\nIn the beginning, Yahweh his God, and & more.\n\n"
                         "line one\nline two\n\nNext.")

    def test_html(self):
        markup = ("<html><head><title>T</title><style>p{}</style></head><body>"
                  "<h1>Title</h1><p>Some   <b>bold</b>\ntext.</p><script>x()</script>"
                  "<pre>  indented\n    code</pre><ul><li>one</li><li>two</li></ul>"
                  "a<br>b &lt;c&gt;</body></html>")
        self.assertEqual(textclean.html_to_text(markup),
                         "Title\n\nSome bold text.\n\n  indented\n    code\n\n- one\n\n- two\n\na\nb <c>")

    def test_html_navigation_chrome_is_dropped(self):
        markup = ('<body><div class="navheader"><div><a href="p">Prev</a></div> Up</div>'
                  '<div class="chapter"><h2>4.1 Syntax</h2><div class="toc"><dl><dt>4.1.1</dt></dl></div>'
                  '<p>Body text<br/>more.</p></div><nav>Home</nav><p id="mathjaxlink">[MathJax on]</p>'
                  '<div class="navfooter">Next</div><p>End.</p></body>')
        self.assertEqual(textclean.html_to_text(markup), "4.1 Syntax\n\nBody text\nmore.\n\nEnd.")

    def test_overstrike_and_normalisation(self):
        self.assertEqual(textclean.strip_overstrike("N\bNA\bAM\bME\bE _\bx"), "NAME x")
        self.assertEqual(textclean.normalize_prose("  a \t b\r\n\n\n\n c\x07 "), "a b\n\nc")
        self.assertEqual(textclean.normalize_layout("\n\tif x:   \n\n\n\n\t\ty\n"), "\tif x:\n\n\t\ty")
        self.assertEqual(textclean.reflow("one\ntwo\n\nthree\n four"), "one two\n\nthree four")

    def test_dictd_entry(self):
        entry = ("Caloric \\Ca*lor\"ic\\, a.\n   Of or pertaining to\n   {caloric}.\n"
                 "   [1913 Webster]\n\n   2. Heat. [R.]\n")
        self.assertEqual(textclean.clean_dictd_entry(entry),
                         "Caloric \\Ca*lor\"ic\\, a. Of or pertaining to caloric.\n\n2. Heat. [R.]")

    def test_gutenberg_boilerplate(self):
        text = ("\ufeffThe Project Gutenberg EBook\nlicence\n*** START OF THIS PROJECT GUTENBERG "
                "EBOOK X ***\nCall me Ishmael.\nEnd of Project Gutenberg's X\nmore licence")
        self.assertEqual(extract.strip_gutenberg(text).strip(), "Call me Ishmael.")
        self.assertEqual(extract.strip_gutenberg("plain"), "plain")

    def test_brown(self):
        s = "The/at jury/nn ,/, ``/`` quite/ql (/( rightly/rb )/) ''/'' said/vbd it's/pps+bez ok/jj ./."
        self.assertEqual(extract.brown_detokenize(s), 'The jury, "quite (rightly)" said it\'s ok.')
        raw = "\n\n\tA/at b/nn ./.\nC/at d/nn ./.\n\n\n\tE/at ./.\n"
        self.assertEqual(extract.brown_text(raw), "A b. C d.\n\nE.")

    def test_wordnet_record(self):
        line = ("00002137 03 n 02 abstraction 0 abstract_entity 0 001 @ 00001740 n 0000 "
                "| a general concept formed by extracting common features  \n")
        self.assertEqual(extract.wordnet_record(line),
                         ("abstraction, abstract entity: a general concept formed by extracting "
                          "common features", 3))
        self.assertIsNone(extract.wordnet_record("  1 This software and database is ...\n"))
        adj = "00001740 00 a 01 able(a) 0 000 | (usually followed by `to') having the means  \n"
        self.assertEqual(extract.wordnet_record(adj)[0], "able: (usually followed by `to') having the means")

    def test_obo(self):
        text = ('format-version: 1.2\n\n[Term]\nid: SO:1\nname: region\ndef: "A \\"sequence\\" '
                'feature." [SO:ke]\n\n[Term]\nid: SO:2\nname: old\ndef: "Gone." []\nis_obsolete: true\n\n'
                '[Term]\nid: SO:3\nname: nodef\n\n[Typedef]\nid: part_of\nname: part of\ndef: "x" []\n')
        self.assertEqual(extract.obo_records(text), ['region: A "sequence" feature.'])

    def test_email(self):
        raw = (b"From: Alice <a@example.org>\nTo: bob@example.org\nSubject: =?utf-8?q?caf=C3=A9?=\n"
               b"Date: Thu, 22 Aug 2002 12:36:23 +0100\nReceived: from x\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/alternative; boundary=XX\n\n--XX\n"
               b"Content-Type: text/plain; charset=utf-8\n\nHello   there.\r\n\r\n\r\n\r\nBye.\n"
               b"--XX\nContent-Type: text/html\n\n<p>Hello</p>\n--XX--\n")
        self.assertEqual(extract.email_text(raw),
                         "From: Alice <a@example.org>\nTo: bob@example.org\nSubject: café\n"
                         "Date: Thu, 22 Aug 2002 12:36:23 +0100\n\nHello   there.\n\nBye.")
        html_only = (b"Subject: hi\nContent-Type: text/html\n\n"
                     b"<html><body><p>Buy <b>now</b></p></body></html>\n")
        self.assertEqual(extract.email_text(html_only), "Subject: hi\n\nBuy now")
        self.assertIsNone(extract.email_text(b"Subject: empty\n\n   \n"))

    def test_code_filter(self):
        good = b"package main\n\n" + b"// line\n" * 40
        self.assertIsNotNone(extract.code_text(good))
        self.assertIsNone(extract.code_text(b"x = 1\n"))  # < 200 bytes
        self.assertIsNone(extract.code_text(good + b"\0"))
        self.assertIsNone(extract.code_text(good + b"x" * 1001 + b"\n"))
        self.assertIsNone(extract.code_text(good + b"\xff\xfe"))
        self.assertIsNone(extract.code_text(good * 1000))  # > 200 KB
        self.assertEqual(extract.code_text(b"a = 1   \r\n" * 30), "a = 1\n" * 29 + "a = 1")


class DictdTest(unittest.TestCase):
    @staticmethod
    def b64(n):
        digits = ""
        while True:
            digits = dictd._B64[n % 64] + digits
            n //= 64
            if n == 0:
                return digits

    def test_b64_numbers(self):
        self.assertEqual(dictd.b64_number("A"), 0)
        self.assertEqual(dictd.b64_number("BA"), 64)
        self.assertEqual(dictd.b64_number("5I"), 57 * 64 + 8)
        for n in (0, 1, 63, 64, 4095, 123456789):
            self.assertEqual(dictd.b64_number(self.b64(n)), n)
        with self.assertRaises(dictd.DictdError):
            dictd.b64_number("A*")

    def test_database_round_trip(self):
        defs = ["00-database-info\n   about this db\n", "apple\n   A fruit.\n", "Bär\n   A bear.\n"]
        data = "".join(defs).encode("utf-8")
        offsets, pos = [], 0
        for d in defs:
            n = len(d.encode("utf-8"))
            offsets.append((pos, n))
            pos += n
        lines = [("00-database-info", *offsets[0]), ("apple", *offsets[1]), ("apples", *offsets[1]),
                 ("bär", *offsets[2])]
        index = "".join(f"{w}\t{self.b64(o)}\t{self.b64(n)}\n" for w, o, n in lines)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "t.index"), "w", encoding="utf-8") as f:
                f.write(index)
            with gzip.open(os.path.join(tmp, "t.dict.dz"), "wb") as f:  # dictzip reads as gzip
                f.write(data)
            got = dictd.read_database(os.path.join(tmp, "t.index"), os.path.join(tmp, "t.dict.dz"))
        self.assertEqual(got, defs[1:])  # metadata dropped, shared definition once, file order

    def test_bad_index_line(self):
        with self.assertRaises(dictd.DictdError):
            dictd.parse_index("word only\n")
        with self.assertRaises(dictd.DictdError):
            dictd.entries([("w", 10, 10)], b"short")


def _xdr_int(v):
    return struct.pack(">i", v)


def _xdr_char(s):
    b = s.encode("utf-8")
    return _xdr_int(9 | (1 << 15)) + _xdr_int(len(b)) + b  # CHARSXP, UTF8 flag in the levels


def _xdr_header():
    return b"X\n" + _xdr_int(3) + _xdr_int(0x40201) + _xdr_int(0x30500) + _xdr_int(5) + b"UTF-8"


def _xdr_strsxp(values, names=None):
    flags = 16 | ((1 << 9) if names else 0)
    out = _xdr_int(flags) + _xdr_int(len(values))
    for v in values:
        out += _xdr_int(9) + _xdr_int(-1) if v is None else _xdr_char(v)
    if names:
        out += _xdr_names_attr(names)
    return out


def _xdr_names_attr(names, ref=False):
    """A one-cell attribute pairlist names = c(...); the tag symbol written in full or as a
    reference to the first symbol of the table."""
    tag = _xdr_int(255 | (1 << 8)) if ref else _xdr_int(1) + _xdr_char("names")
    return _xdr_int(2 | (1 << 10)) + tag + _xdr_strsxp(names) + _xdr_int(254)


class RSerializeTest(unittest.TestCase):
    def test_character_vector_with_na_and_names(self):
        blob = _xdr_header() + _xdr_strsxp(["It is a truth", None, "universally"], names=["a", "b", "c"])
        obj = rserialize.unserialize(blob)
        self.assertEqual(obj.rtype, rserialize.STRSXP)
        self.assertEqual(obj.value, ["It is a truth", None, "universally"])
        self.assertEqual(obj.attr("names").value, ["a", "b", "c"])
        self.assertEqual(rserialize.strings(obj), ["It is a truth", "universally"])

    def test_list_with_shared_symbol_reference_and_numbers(self):
        # list(x = c(1L, 2L), y = 2.5) with names; then an inner vector whose "names" tag is a
        # REFSXP back to the symbol of the outer attribute.
        inner = _xdr_int(13 | (1 << 9)) + _xdr_int(2) + _xdr_int(1) + _xdr_int(2)
        real = _xdr_int(14) + _xdr_int(1) + struct.pack(">d", 2.5)
        body = _xdr_int(19 | (1 << 9)) + _xdr_int(2) + inner + _xdr_names_attr(["p", "q"], ref=False)
        # The inner's attribute came first in the stream, so the outer one refers back to it.
        body += real + _xdr_names_attr(["x", "y"], ref=True)
        obj = rserialize.unserialize(_xdr_header() + body)
        self.assertEqual(obj.rtype, rserialize.VECSXP)
        self.assertEqual(obj.value[0].value, [1, 2])
        self.assertEqual(obj.value[0].attr("names").value, ["p", "q"])
        self.assertEqual(obj.value[1].value, [2.5])
        self.assertEqual(obj.attr("names").value, ["x", "y"])

    def test_rejects_other_formats_and_truncation(self):
        with self.assertRaises(rserialize.RFormatError):
            rserialize.unserialize(b"A\n3\n")
        with self.assertRaises(rserialize.RFormatError):
            rserialize.unserialize(_xdr_header() + _xdr_int(16) + _xdr_int(3) + _xdr_char("x"))

    def test_lazyload_database(self):
        book = _xdr_header() + _xdr_strsxp(["EMMA", "", "Emma Woodhouse, handsome,"])
        entry = struct.pack(">I", len(book)) + zlib.compress(book)
        pos = _xdr_int(13) + _xdr_int(2) + _xdr_int(0) + _xdr_int(len(entry))
        variables = _xdr_int(19 | (1 << 9)) + _xdr_int(1) + pos + _xdr_names_attr(["emma"])
        index = (_xdr_header() + _xdr_int(19 | (1 << 9)) + _xdr_int(3) + variables
                 + _xdr_int(19) + _xdr_int(0)  # references = list()
                 + _xdr_int(10) + _xdr_int(1) + _xdr_int(1)  # compressed = TRUE
                 + _xdr_names_attr(["variables", "references", "compressed"], ref=True))
        with tempfile.TemporaryDirectory() as tmp:
            rdx, rdb = os.path.join(tmp, "Rdata.rdx"), os.path.join(tmp, "Rdata.rdb")
            with open(rdx, "wb") as f:
                f.write(gzip.compress(index))
            with open(rdb, "wb") as f:
                f.write(entry)
            got = rserialize.read_lazyload_db(rdx, rdb)
            self.assertEqual(list(got), ["emma"])
            self.assertEqual(got["emma"].value, ["EMMA", "", "Emma Woodhouse, handsome,"])
            with open(rdx, "wb") as f:  # R's own framing: 4-byte length + zlib
                f.write(struct.pack(">I", len(index)) + zlib.compress(index))
            self.assertEqual(rserialize.read_lazyload_db(rdx, rdb)["emma"].value[0], "EMMA")


class SwordTest(unittest.TestCase):
    def test_blocks_and_verses(self):
        book1 = "<div>In the beginning</div> God created".encode("utf-8")
        book2 = "Blessed is the man—".encode("utf-8")
        z1, z2 = zlib.compress(book1), zlib.compress(book2)
        bzz = z1 + z2
        bzs = struct.pack("<III", 0, len(z1), len(book1)) + struct.pack("<III", len(z1), len(z2), len(book2))
        bzv = (struct.pack("<IIH", 0, 0, 0)  # empty slot (module heading)
               + struct.pack("<IIH", 0, 0, 27) + struct.pack("<IIH", 0, 27, len(book1) - 27)
               + struct.pack("<IIH", 1, 0, len(book2)))
        got = sword.testament_blocks(bzs, bzz, bzv)
        self.assertEqual(got, [(0, ["<div>In the beginning</div>", " God created"]),
                               (1, ["Blessed is the man—"])])
        with self.assertRaises(sword.SwordError):
            sword.testament_blocks(bzs, bzz, bzv + b"x")


class _FakeArgs:
    def __init__(self, out, **kw):
        self.preset, self.out, self.cache = "demo", out, os.path.join(out, "cache")
        self.seed, self.holdout, self.code_cap_mb = 1234, 0.2, 200
        self.upsample, self.force = "books=2", False
        self.__dict__.update(kw)


class BuildTest(unittest.TestCase):
    """The builder end to end, with fake sources instead of packages."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name
        self.calls = 0
        long_book = "\n\n".join(f"Chapter {i}. " + "It was a dark and stormy night. " * 400
                                for i in range(20))

        def books(cache):
            self.calls += 1
            return [extract.Candidate("novel", len(long_book), lambda: long_book),
                    extract.Candidate("dup", 10, lambda: long_book),  # exact duplicate: dropped
                    extract.Candidate("empty", 0, lambda: None)]

        def refs(cache):
            return [extract.Candidate(f"r{i}", 100, lambda i=i: f"entry {i}: " + "x" * 90)
                    for i in range(200)]

        fake = [(sources.Source("fake-books", "books", (), (), books, None), None),
                (sources.Source("fake-ref", "reference", (), (), refs, None), 0.005)]  # 5 KB cap
        self.saved = sources.preset
        sources.preset = lambda name: fake

    def tearDown(self):
        sources.preset = self.saved
        self.tmp.cleanup()

    def _run(self, **kw):
        log = []
        rc = build_corpus.Builder(_FakeArgs(self.out, **kw), log=log.append).run()
        self.assertEqual(rc, 0)
        return log

    def _bytes(self, rel):
        with open(os.path.join(self.out, "text", rel), "rb") as f:
            return f.read()

    def _read(self, rel):
        with open(os.path.join(self.out, "text", rel), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def test_build_outputs_manifest_and_is_idempotent(self):
        self._run()
        with open(os.path.join(self.out, "text", "corpus.json"), encoding="utf-8") as f:
            corpus = json.load(f)
        train, valid = self._read("train/books.jsonl"), self._read("valid/books.jsonl")
        ids = [d["id"] for d in train] + [d["id"] for d in valid]
        self.assertTrue(all(i.startswith("novel#") for i in ids), ids)  # chunked, dup dropped
        self.assertTrue(all(textclean.utf8_len(d["text"]) <= textclean.CHUNK_BYTES for d in train))
        books = corpus["domains"]["books"]
        self.assertEqual(books["train"]["documents"], 2 * books["train"]["unique_documents"])  # upsampled
        self.assertEqual(len(train), books["train"]["documents"])
        self.assertEqual(len(valid), books["valid"]["documents"])
        self.assertGreaterEqual(len(valid), 1)
        self.assertEqual({d["domain"] for d in train}, {"books"})
        self.assertEqual(set(train[0]), {"domain", "source", "id", "text"})
        # The cap keeps ~5 KB of the 200 records of ~100 bytes.
        ref = corpus["domains"]["reference"]
        n_ref = ref["train"]["unique_documents"] + ref["valid"]["unique_documents"]
        self.assertTrue(45 <= n_ref <= 55, n_ref)
        train_dir = os.path.join(self.out, "text", "train")
        self.assertFalse([f for f in os.listdir(train_dir) if f.endswith(".tmp")])

        first = {rel: self._bytes(rel) for rel in corpus["files"]}
        log = self._run()
        self.assertIn("up to date", log[0])
        self.assertEqual(self.calls, 1)  # nothing extracted again
        self._run(force=True)  # a forced rebuild gives the same bytes
        for rel, data in first.items():
            self.assertEqual(self._bytes(rel), data, rel)
        self._run(seed=99)  # other options: rebuilt
        self.assertEqual(self.calls, 3)

    def test_up_to_date_logic(self):
        text_dir = os.path.join(self.out, "text")
        opts = {"preset": "demo", "seed": 1}
        self.assertEqual(build_corpus.up_to_date(text_dir, opts), (False, "no previous build"))
        os.makedirs(os.path.join(text_dir, "train"))
        with open(os.path.join(text_dir, "train", "books.jsonl"), "w") as f:
            f.write("{}\n")
        manifest = {"options": opts, "files": {"train/books.jsonl": {"bytes": 3}}}
        with open(os.path.join(text_dir, "corpus.json"), "w") as f:
            json.dump(manifest, f)
        self.assertEqual(build_corpus.up_to_date(text_dir, opts), (True, ""))
        self.assertFalse(build_corpus.up_to_date(text_dir, {"preset": "demo", "seed": 2})[0])
        with open(os.path.join(text_dir, "train", "books.jsonl"), "a") as f:
            f.write("{}\n")
        self.assertIn("changed", build_corpus.up_to_date(text_dir, opts)[1])
        with open(os.path.join(text_dir, "corpus.json"), "w") as f:
            f.write("{not json")
        self.assertFalse(build_corpus.up_to_date(text_dir, opts)[0])

    def test_expected_failure_is_one_clean_message(self):
        def broken(cache):
            raise extract.ExtractError("package x: expected /nowhere, not found")
        sources.preset = lambda name: [(sources.Source("x", "books", (), (), broken, None), None)]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = build_corpus.main(["--preset", "demo", "--out", os.path.join(self.out, "o")])
        self.assertEqual(rc, 1)
        self.assertEqual(err.getvalue().strip(),
                         "build_corpus: error: package x: expected /nowhere, not found")


class PresetTest(unittest.TestCase):
    def test_presets_cover_the_spec_domains(self):
        demo = sources.preset("demo")
        self.assertEqual({s.domain for s, _ in demo}, {"books", "reference", "code", "docs", "bio", "legal"})
        full = sources.preset("full")
        self.assertEqual({s.domain for s, _ in full}, set(sources.DOMAINS))
        names = [s.name for s, _ in full]
        self.assertEqual(len(names), len(set(names)))
        self.assertTrue(all(s.lang for s, _ in full if s.domain == "code"))
        with self.assertRaises(ValueError):
            sources.preset("huge")

    def test_committed_sample_covers_the_demo_domains(self):
        # tests/data/corpus_sample.jsonl: real text from a demo build, for tokenizer tests.
        with open(os.path.join(REPO, "tests", "data", "corpus_sample.jsonl"), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual({r["domain"] for r in rows}, {s.domain for s, _ in sources.preset("demo")})
        for r in rows:
            self.assertTrue(r["source"] and r["text"].strip(), r)
            self.assertLessEqual(textclean.utf8_len(r["text"]), 4096)
        self.assertTrue(any(ord(c) > 127 for r in rows for c in r["text"]))  # some non-ASCII


if __name__ == "__main__":
    unittest.main()
