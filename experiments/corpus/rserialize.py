"""Reads R's XDR serialization format (version 2 and 3) and R lazy-load databases
(`data/Rdata.rdx` + `data/Rdata.rdb`), enough to pull the character vectors out of a package's
datasets (the Austen novels in r-cran-janeaustenr, Moby Dick in r-cran-tokenizers).

The format, from R's serialize.c documentation: a header ("X\\n", format version, writer R version,
minimal reader version, and for version 3 the native encoding), then one item. Every item starts
with a 32-bit big-endian flags word: SEXP type in bits 0-7, "is object" bit 8, "has attributes"
bit 9, "has tag" bit 10, and the general-purpose "levels" in bits 12-31 (for CHARSXP: the string's
encoding). Symbols and environments go into a reference table that REFSXP items point back to.
"""
import bz2
import gzip
import lzma
import struct
import zlib


class RFormatError(ValueError):
    pass


# SEXP types (R's Rinternals.h) and serialize.c pseudo-types.
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
SPECIALSXP, BUILTINSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP = 7, 8, 9, 10, 13, 14, 15
STRSXP, DOTSXP, VECSXP, EXPRSXP, BCODESXP, EXTPTRSXP, WEAKREFSXP = 16, 17, 19, 20, 21, 22, 23
RAWSXP, S4SXP = 24, 25
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP = 255, 254, 253, 252, 251
BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP, PERSISTSXP = 250, 249, 248, 247
EMPTYENV_SXP, BASEENV_SXP, ATTRLANGSXP, ATTRLISTSXP, ALTREP_SXP = 242, 241, 240, 239, 238

_LATIN1_MASK = 1 << 2
_PAIRLIKE = {LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLANGSXP, ATTRLISTSXP}
_SINGLETONS = {NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP, BASENAMESPACE_SXP,
               EMPTYENV_SXP, BASEENV_SXP}


class RObject:
    """A decoded R value: `rtype` (SEXP type), `value` (list of str/None for STRSXP, list of
    numbers for numeric vectors, list of RObject for VECSXP, (tag, value) pairs for pairlists,
    str for SYMSXP/CHARSXP) and `attributes` (a pairlist RObject or None)."""
    __slots__ = ("rtype", "value", "attributes")

    def __init__(self, rtype, value=None, attributes=None):
        self.rtype, self.value, self.attributes = rtype, value, attributes

    def attr(self, name):
        if self.attributes is None:
            return None
        for tag, val in self.attributes.value:
            if tag == name:
                return val
        return None

    def __repr__(self):
        return f"RObject(type={self.rtype}, value={self.value!r:.60})"


class _Reader:
    def __init__(self, data):
        self.data, self.pos, self.refs = data, 0, []

    def int(self):
        if self.pos + 4 > len(self.data):
            raise RFormatError(f"truncated R serialization at byte {self.pos}")
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more ints
            upper, lower = self.int(), self.int()
            n = (upper << 32) + (lower & 0xFFFFFFFF)
        if n < 0:
            raise RFormatError(f"negative length {n} at byte {self.pos}")
        return n

    def raw(self, n):
        if self.pos + n > len(self.data):
            raise RFormatError(f"truncated R serialization: {n} bytes wanted at byte {self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def numbers(self, fmt, n, size):
        b = self.raw(n * size)
        return list(struct.unpack(f">{n}{fmt}", b)) if n else []

    def charsxp(self, levels):
        n = self.int()
        if n == -1:
            return None  # NA_STRING
        b = self.raw(n)
        return b.decode("latin-1") if levels & _LATIN1_MASK else b.decode("utf-8", "replace")

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        levels = flags >> 12
        if t in _SINGLETONS:
            return RObject(t)
        if t == REFSXP:
            idx = flags >> 8 or self.int()
            if not 1 <= idx <= len(self.refs):
                raise RFormatError(f"bad reference index {idx} (table has {len(self.refs)})")
            return self.refs[idx - 1]
        if t in (PERSISTSXP, NAMESPACESXP, PACKAGESXP):
            if self.int() != 0:
                raise RFormatError("bad persistent string vector")
            obj = RObject(t, [self.item().value for _ in range(self.length())])
            self.refs.append(obj)
            return obj
        if t == SYMSXP:
            obj = RObject(SYMSXP, self.item().value)
            self.refs.append(obj)
            return obj
        if t == ENVSXP:
            self.int()  # locked
            obj = RObject(ENVSXP)
            self.refs.append(obj)  # before the contents: they may refer back to it
            enclos, frame, hashtab, attributes = self.item(), self.item(), self.item(), self.item()
            obj.value = (enclos, frame, hashtab)
            obj.attributes = attributes if attributes.rtype != NILVALUE_SXP else None
            return obj
        if t in _PAIRLIKE:
            return self._pairlist(t, has_attr, has_tag)
        if t == ALTREP_SXP:
            self.item()  # the ALTREP class description
            state, attributes = self.item(), self.item()
            state.attributes = attributes if attributes.rtype != NILVALUE_SXP else None
            return state  # compact sequences / wrappers: the state carries the data we need
        if t == CHARSXP:
            obj = RObject(CHARSXP, self.charsxp(levels))
        elif t in (LGLSXP, INTSXP):
            obj = RObject(t, self.numbers("i", self.length(), 4))
        elif t == REALSXP:
            obj = RObject(t, self.numbers("d", self.length(), 8))
        elif t == CPLXSXP:
            obj = RObject(t, self.numbers("d", 2 * self.length(), 8))
        elif t == STRSXP:
            n = self.length()
            values = []
            for _ in range(n):
                f = self.int()
                if f & 0xFF != CHARSXP:
                    raise RFormatError(f"STRSXP element of type {f & 0xFF}, expected CHARSXP")
                values.append(self.charsxp(f >> 12))
            obj = RObject(STRSXP, values)
        elif t in (VECSXP, EXPRSXP):
            obj = RObject(t, [self.item() for _ in range(self.length())])
        elif t == RAWSXP:
            obj = RObject(t, self.raw(self.length()))
        elif t in (SPECIALSXP, BUILTINSXP):
            obj = RObject(t, self.raw(self.int()).decode("latin-1"))
        elif t == S4SXP:
            obj = RObject(t)
        elif t == EXTPTRSXP:
            obj = RObject(t)
            self.refs.append(obj)
            obj.value = (self.item(), self.item())
        elif t == WEAKREFSXP:
            obj = RObject(t)
            self.refs.append(obj)
        else:
            raise RFormatError(f"unsupported SEXP type {t} at byte {self.pos - 4}")
        if has_attr:
            obj.attributes = self.item()
        return obj

    def _pairlist(self, t, has_attr, has_tag):
        """A pairlist read iteratively (long lists would overflow recursion): each cell is
        [attributes] [tag] car, then the cdr, which is the next cell or the terminator."""
        cells, attributes = [], None
        while True:
            attr = self.item() if has_attr else None
            if attributes is None:
                attributes = attr
            tag = self.item() if has_tag else None
            car = self.item()
            cells.append((tag.value if tag is not None else None, car))
            flags = self.int()
            nt = flags & 0xFF
            if nt not in _PAIRLIKE:
                self.pos -= 4
                self.item()  # the terminator (usually R_NilValue)
                break
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        return RObject(t, cells, attributes)


def unserialize(data):
    """Decodes one XDR-serialized R object (the bytes after any compression)."""
    if data[:2] != b"X\n":
        kind = {b"A\n": "ASCII", b"B\n": "native binary"}.get(data[:2], repr(data[:2]))
        raise RFormatError(f"R serialization format {kind} not supported (only XDR 'X')")
    r = _Reader(data)
    r.pos = 2
    version = r.int()
    r.int()  # writer's R version
    r.int()  # minimal reader version
    if version == 3:
        r.raw(r.int())  # native encoding name
    elif version != 2:
        raise RFormatError(f"R serialization version {version} not supported")
    return r.item()


def _decompress_rdx(blob):
    """An .rdx file: gzip (what R's saveRDS-style writer produces) or R's own framing, a 4-byte
    big-endian length followed by a zlib stream."""
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    return zlib.decompress(blob[4:])


def _decompress_rdb_entry(blob, compressed):
    """One .rdb entry: 4-byte big-endian uncompressed length, then (compressed = 1) a zlib stream
    or (compressed = 2/3) a type byte ('Z' zlib, '2' bzip2, 'X' xz, '0' stored) and the data."""
    if len(blob) < 4:
        raise RFormatError("truncated .rdb entry")
    (n,) = struct.unpack_from(">I", blob, 0)
    if compressed in (0, False):
        out = blob[4:]
    elif compressed in (1, True):
        out = zlib.decompress(blob[4:])
    else:
        kind, body = blob[4:5], blob[5:]
        if kind == b"Z":
            out = zlib.decompress(body)
        elif kind == b"2":
            out = bz2.decompress(body)
        elif kind == b"X":
            out = lzma.decompress(body)
        elif kind == b"0":
            out = body
        else:
            raise RFormatError(f"unknown .rdb compression type {kind!r}")
    if len(out) != n:
        raise RFormatError(f".rdb entry: expected {n} bytes after decompression, got {len(out)}")
    return out


def read_lazyload_db(rdx_path, rdb_path):
    """Returns {variable name: RObject} for every variable of a lazy-load database."""
    with open(rdx_path, "rb") as f:
        index = unserialize(_decompress_rdx(f.read()))
    if index.rtype != VECSXP:
        raise RFormatError(f"{rdx_path}: index is not a list")
    names = index.attr("names")
    parts = dict(zip(names.value, index.value)) if names is not None else {}
    if "variables" not in parts:
        raise RFormatError(f"{rdx_path}: index has no 'variables' entry")
    variables = parts["variables"]
    compressed = parts["compressed"].value[0] if "compressed" in parts else 1
    var_names = variables.attr("names").value
    out = {}
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    for name, pos in zip(var_names, variables.value):
        offset, length = int(pos.value[0]), int(pos.value[1])
        if offset + length > len(rdb):
            raise RFormatError(f"{rdb_path}: entry {name!r} runs past the end of the file")
        out[name] = unserialize(_decompress_rdb_entry(rdb[offset:offset + length], compressed))
    return out


def strings(obj):
    """All non-NA strings of the character vectors inside obj (depth first, in order)."""
    out, stack = [], [obj]
    while stack:
        o = stack.pop()
        if o.rtype == STRSXP:
            out.extend(s for s in o.value if s is not None)
        elif o.rtype in (VECSXP, EXPRSXP):
            stack.extend(reversed(o.value))
    return out
