"""Reads SWORD zText Bible modules (e.g. Debian's sword-text-web, sword-text-kjv).

A zText module keeps each testament in three files (little-endian):
  ot.bzs / nt.bzs  block index: per block u32 offset into .bzz, u32 compressed size, u32 size
  ot.bzz / nt.bzz  the compressed blocks (zlib for CompressType=ZIP)
  ot.bzv / nt.bzv  verse index: per verse slot u32 block number, u32 offset in the uncompressed
                   block, u16 length (0 = empty slot: headings, missing verses)
With BlockType=BOOK each block is one book of the Bible, which is the document unit we keep.
"""
import bz2
import lzma
import os
import re
import struct
import zlib


class SwordError(ValueError):
    pass


def read_conf(path):
    """The module's .conf (INI-like, one [section]) as a dict of its first-seen keys."""
    conf = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", "[")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            conf.setdefault(key.strip(), value.strip())
    return conf


_DECOMPRESS = {"ZIP": zlib.decompress, "BZIP2": bz2.decompress, "XZ": lzma.decompress,
               "LZMA": lzma.decompress}


def parse_block_index(bzs):
    if len(bzs) % 12:
        raise SwordError(f"block index of {len(bzs)} bytes is not a multiple of 12")
    return [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]


def parse_verse_index(bzv):
    if len(bzv) % 10:
        raise SwordError(f"verse index of {len(bzv)} bytes is not a multiple of 10")
    return [struct.unpack_from("<IIH", bzv, i) for i in range(0, len(bzv), 10)]


def testament_blocks(bzs, bzz, bzv, decompress=zlib.decompress, encoding="utf-8"):
    """[(block number, [verse texts in order])] of one testament; empty verse slots skipped."""
    blocks = parse_block_index(bzs)
    verses = {}
    for block, offset, size in parse_verse_index(bzv):
        if size:
            if block >= len(blocks):
                raise SwordError(f"verse points to block {block}, index has {len(blocks)}")
            verses.setdefault(block, []).append((offset, size))
    out = []
    for block in sorted(verses):
        off, csize, usize = blocks[block]
        raw = decompress(bzz[off:off + csize])
        if len(raw) != usize:
            raise SwordError(f"block {block}: {len(raw)} bytes after decompression, index says {usize}")
        # Slices are byte ranges; decode each (a verse never splits a character).
        out.append((block, [raw[o:o + n].decode(encoding, "replace") for o, n in verses[block]]))
    return out


_BOOK_ID = re.compile(r'osisID="([A-Za-z0-9]+)[."]')


def read_module(conf_path, root):
    """[(document id, OSIS text of one block = one book)] for a module; document ids are the
    OSIS book name where the text names it (e.g. "ot/Gen"), else the block number."""
    conf = read_conf(conf_path)
    if conf.get("ModDrv", "").lower() != "ztext":
        raise SwordError(f"{conf_path}: ModDrv={conf.get('ModDrv')!r}, only zText is supported")
    if conf.get("CipherKey"):
        raise SwordError(f"{conf_path}: module is enciphered")
    kind = conf.get("CompressType", "ZIP").upper()
    if kind not in _DECOMPRESS:
        raise SwordError(f"{conf_path}: CompressType={kind} not supported")
    encoding = "utf-8" if conf.get("Encoding", "").upper() == "UTF-8" else "latin-1"
    data_dir = os.path.normpath(os.path.join(root, conf.get("DataPath", "")))
    docs = []
    for testament in ("ot", "nt"):
        base = os.path.join(data_dir, testament)
        if not os.path.exists(base + ".bzs"):
            continue
        parts = []
        for ext in (".bzs", ".bzz", ".bzv"):
            with open(base + ext, "rb") as f:
                parts.append(f.read())
        for block, verses in testament_blocks(*parts, decompress=_DECOMPRESS[kind], encoding=encoding):
            text = " ".join(verses)
            m = _BOOK_ID.search(text)
            docs.append((f"{testament}/{m.group(1) if m else block}", text))
    if not docs:
        raise SwordError(f"{conf_path}: no ot/nt data under {data_dir}")
    return docs
