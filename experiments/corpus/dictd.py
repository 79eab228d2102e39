"""Reads dictd databases (`NAME.index` + `NAME.dict.dz`), the format of Debian's dict-* packages.

The index has one line per headword: "headword TAB offset TAB length", the numbers written in
base 64 (digits A-Z a-z 0-9 + /, most significant first) and pointing into the uncompressed
.dict file. A .dict.dz is dictzip: an ordinary gzip file with a random-access table in the gzip
extra field, so plain gzip reads it whole.
"""
import gzip
import re

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}
# Metadata entries dictd keeps in the database itself ("00-database-info", "00databaseurl", ...).
_META = re.compile(r"^00-?[a-z]")


class DictdError(ValueError):
    pass


def b64_number(s):
    n = 0
    for c in s:
        if c not in _B64_VALUE:
            raise DictdError(f"bad base-64 digit {c!r} in {s!r}")
        n = n * 64 + _B64_VALUE[c]
    return n


def parse_index(text):
    """[(headword, offset, length)] from the text of a .index file."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise DictdError(f"index line {lineno}: expected 3 tab-separated fields: {line!r}")
        out.append((fields[0], b64_number(fields[1]), b64_number(fields[2])))
    return out


def entries(index, data, encoding="utf-8"):
    """The distinct definitions of a database in file order, metadata entries left out. Several
    headwords often share one definition; each definition comes back once."""
    meta = {(o, n) for w, o, n in index if _META.match(w)}
    spans = sorted({(o, n) for w, o, n in index} - meta)
    out = []
    for o, n in spans:
        if o + n > len(data):
            raise DictdError(f"entry at {o}+{n} runs past the end of the data ({len(data)} bytes)")
        out.append(data[o:o + n].decode(encoding, "replace"))
    return out


def read_database(index_path, dict_path):
    with open(index_path, encoding="utf-8", errors="replace") as f:
        index = parse_index(f.read())
    if dict_path.endswith(".dz") or dict_path.endswith(".gz"):
        with gzip.open(dict_path, "rb") as f:
            data = f.read()
    else:
        with open(dict_path, "rb") as f:
            data = f.read()
    return entries(index, data)
