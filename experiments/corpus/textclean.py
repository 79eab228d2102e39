"""Text cleaning shared by all extractors: whitespace normalisation, markup stripping (OSIS, HTML,
man-page overstrike, dictd braces) and splitting long documents into chunks.

Why chunks: holdout is decided per document, so a 1 MB novel must be cut into pieces (at paragraph
boundaries) for the held-out 5% to be spread over many places; small records (dictionary entries,
GO terms) are the opposite case and get packed into documents of a few KB.
"""
import html
import re
import unicodedata
from html.parser import HTMLParser

CHUNK_BYTES = 64 * 1024  # longest document written; longer ones are split at paragraph boundaries
GROUP_BYTES = 16 * 1024  # small records (dictionary entries, ...) are packed into documents this big

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUN = re.compile(r"\n{3,}")
_SPACE_RUN = re.compile(r"[ \t\u00a0]+")


def utf8_len(s):
    return len(s.encode("utf-8"))


def normalize_prose(text):
    """Prose: NFC, no control characters, single spaces inside lines, at most one blank line
    between paragraphs, no leading/trailing blank lines. Leading indentation is dropped."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = [_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n")


def normalize_layout(text):
    """Text whose layout matters (reST, man pages, code, licences): keep indentation and tabs, drop
    trailing spaces and control characters, squeeze blank-line runs to one blank line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text.replace("\x0c", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n")


def reflow(text):
    """Joins hard-wrapped lines of each paragraph (paragraphs are separated by blank lines) into
    one line; the result is normalised prose."""
    paragraphs = normalize_prose(text).split("\n\n")
    return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs if p.strip())


# ---------------------------------------------------------------------------------------------
# Markup


_OSIS_NOTE = re.compile(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", re.S)
_OSIS_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title>", re.S)
_OSIS_PARA = re.compile(
    r"<(?:div|chapter|lg|list|p)\b[^>]*>|</(?:div|chapter|lg|list|p)>"
    r"|<milestone\b[^>]*type=\"x-p\"[^>]*/>")
# A line starts at <l> (not at its end tag or eID milestone, or poetry would be double-spaced).
_OSIS_LINE = re.compile(r"<(?:lb|item)\b[^>]*>|<l\b(?![^>]*\beID=)[^>]*>")
_TAG = re.compile(r"<[^>]*>")
_NOTE_MARK = re.compile(r"(?<=[^\s“‘(\[])\x01+(?=\w)")


def strip_osis(osis):
    """OSIS XML (SWORD modules) to prose: notes and cross-references dropped, titles and
    paragraph/chapter divisions become paragraph breaks, poetry lines become line breaks."""
    # A note often sits between two words with no space around it ("Yahweh<note>..</note>his"):
    # it leaves a mark that becomes a space before a word (unless after a space or an opening
    # quote or bracket) and disappears elsewhere.
    s = _OSIS_NOTE.sub("\x01", osis)
    s = _OSIS_TITLE.sub(lambda m: "\n\n" + m.group(1) + "\n\n", s)
    s = _OSIS_PARA.sub("\n\n", s)
    s = _OSIS_LINE.sub("\n", s)
    s = _TAG.sub("", s)
    s = _NOTE_MARK.sub(" ", s).replace("\x01", "")
    return normalize_prose(html.unescape(s))


_OVERSTRIKE = re.compile(r".\x08")


def strip_overstrike(text):
    """grotty's bold (X\\bX) and underline (_\\bX) to plain characters."""
    return _OVERSTRIKE.sub("", text)


_DICT_ATTRIBUTION = re.compile(r"^[ \t]*\[[^\]\n]*\][ \t]*$", re.M)


def clean_dictd_entry(entry):
    """A dictd entry (GCIDE, FOLDOC, Jargon, ...): drops source-attribution lines such as
    "[1913 Webster]" and the {braces} of cross-references, then reflows the paragraphs."""
    s = _DICT_ATTRIBUTION.sub("", entry)
    s = s.replace("{", "").replace("}", "")
    return reflow(s)


class _HtmlText(HTMLParser):
    SKIP = {"script", "style", "head", "title", "noscript", "template", "svg", "math", "nav"}
    # Navigation chrome of the generators behind Debian's HTML manuals (DocBook, Texinfo, GAPDoc,
    # Node's doc tool): every page would repeat it.
    SKIP_CLASSES = {"navheader", "navfooter", "docnav", "header", "nav-panel", "toc", "chlinktop",
                    "chlinkbot", "chlinkprevnexttop", "chlinkprevnextbot", "ChapSects", "picker"}
    SKIP_IDS = {"banner", "title", "column2", "gtoc", "toc", "mathjaxlink"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}
    BLOCK = {"p", "div", "section", "article", "aside", "header", "footer", "nav", "main",
             "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd", "li", "table",
             "tr", "pre", "blockquote", "hr", "figure", "figcaption", "caption", "form",
             "fieldset", "address", "body", "center"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0
        self.chrome = []  # [tag, depth] of the navigation element being skipped
        self.pre = 0
        self.line_start = True

    def _block(self):
        self.out.append("\n\n")
        self.line_start = True

    def _is_chrome(self, attrs):
        for key, value in attrs:
            if key == "class" and value and self.SKIP_CLASSES.intersection(value.split()):
                return True
            if key == "id" and value in self.SKIP_IDS:
                return True
        return False

    def handle_starttag(self, tag, attrs):
        if self.chrome:
            if tag == self.chrome[0] and tag not in self.VOID:
                self.chrome[1] += 1
            return
        if tag not in self.VOID and self._is_chrome(attrs):
            self.chrome = [tag, 1]
            return
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
            self.line_start = True
        elif tag in self.BLOCK:
            self._block()
            if tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.out.append("- ")
                self.line_start = False
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in ("br", "hr") and not self.chrome:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if self.chrome:
            if tag == self.chrome[0]:
                self.chrome[1] -= 1
                if self.chrome[1] == 0:
                    self.chrome = []
            return
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._block()

    def handle_data(self, data):
        if self.skip or self.chrome:
            return
        if self.pre:
            self.out.append(data)
            self.line_start = data.endswith("\n")
            return
        data = re.sub(r"\s+", " ", data)
        if self.line_start:
            data = data.lstrip()
        if data:
            self.out.append(data)
            self.line_start = False


def html_to_text(markup):
    """HTML to text: block elements become paragraphs, <pre> keeps its layout; scripts, styles,
    the <head> and navigation chrome (see _HtmlText) are dropped."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return normalize_layout("".join(parser.out))


# ---------------------------------------------------------------------------------------------
# Chunking


def _hard_split(text, max_bytes):
    """Splits at UTF-8 character boundaries into pieces of at most max_bytes."""
    raw = text.encode("utf-8")
    pieces, start = [], 0
    while start < len(raw):
        end = min(start + max_bytes, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:  # don't cut inside a character
            end -= 1
        pieces.append(raw[start:end].decode("utf-8"))
        start = end
    return pieces


def pack(parts, sep, max_bytes, _finer=("\n", " ")):
    """Greedily joins consecutive parts with sep into pieces of at most max_bytes; a part that is
    alone too long is split at the next finer separator (then at character boundaries)."""
    out, cur, cur_len = [], [], 0
    sep_len = utf8_len(sep)
    for part in parts:
        n = utf8_len(part)
        if n > max_bytes:
            if cur:
                out.append(sep.join(cur))
                cur, cur_len = [], 0
            if _finer:
                out.extend(pack(part.split(_finer[0]), _finer[0], max_bytes, _finer[1:]))
            else:
                out.extend(_hard_split(part, max_bytes))
            continue
        if cur and cur_len + sep_len + n > max_bytes:
            out.append(sep.join(cur))
            cur, cur_len = [], 0
        cur_len += (sep_len if cur else 0) + n
        cur.append(part)
    if cur:
        out.append(sep.join(cur))
    return [p for p in out if p.strip()]


def chunk_text(text, max_bytes=CHUNK_BYTES):
    """A document longer than max_bytes (UTF-8) split at paragraph boundaries (then line, then
    word boundaries) into pieces of at most max_bytes; shorter documents come back whole."""
    if utf8_len(text) <= max_bytes:
        return [text]
    return pack(text.split("\n\n"), "\n\n", max_bytes)


def group_records(records, max_bytes=GROUP_BYTES):
    """Small records (one dictionary entry, one GO term, ...) packed into documents of at most
    max_bytes, records separated by a blank line."""
    return pack([r for r in records if r.strip()], "\n\n", max_bytes)
