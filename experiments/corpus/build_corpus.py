#!/usr/bin/env python3
"""Builds the multi-domain text corpus from Debian packages and npm tarballs (standard library
only; see docs/data.md).

  build_corpus.py --preset demo|full --out DIR [--cache DIR] [--seed 1234] [--holdout 0.05]
                  [--code-cap-mb 200] [--upsample books=2,bio=2] [--force] [--check-packages]

Writes DIR/text/train/<domain>.jsonl, DIR/text/valid/<domain>.jsonl (one {"domain", "source",
"id", "text"} object a line) and DIR/text/corpus.json (options, per domain and split: documents,
bytes, sources). Every file is written under a temporary name and renamed; corpus.json comes
last, so its presence means a complete build. A re-run with the same options skips the work.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dictd  # noqa: E402
import extract  # noqa: E402
import fetch  # noqa: E402
import rserialize  # noqa: E402
import sources  # noqa: E402
import splits  # noqa: E402
import sword  # noqa: E402
from textclean import CHUNK_BYTES, GROUP_BYTES, chunk_text, utf8_len  # noqa: E402

# Bump when extraction changes what is written: a build with another version is redone.
BUILDER_VERSION = 1
MB = 1_000_000

# Errors that mean "the input or environment is not what we need", reported in one line.
EXPECTED_ERRORS = (fetch.FetchError, extract.ExtractError, rserialize.RFormatError,
                   sword.SwordError, dictd.DictdError, OSError)


def build_options(args):
    """The options that determine the output (compared by the idempotence check)."""
    return {
        "preset": args.preset,
        "seed": args.seed,
        "holdout": args.holdout,
        "code_cap_mb": args.code_cap_mb if args.preset == "full" else None,
        "upsample": splits.parse_upsample(args.upsample),
        "chunk_bytes": CHUNK_BYTES,
        "group_bytes": GROUP_BYTES,
        "builder_version": BUILDER_VERSION,
    }


def up_to_date(text_dir, options):
    """(True, "") when text_dir holds a complete build made with `options`, else (False, why)."""
    manifest = os.path.join(text_dir, "corpus.json")
    try:
        with open(manifest, encoding="utf-8") as f:
            corpus = json.load(f)
    except FileNotFoundError:
        return False, "no previous build"
    except (OSError, ValueError) as e:
        return False, f"{manifest} unreadable ({e})"
    if corpus.get("options") != options:
        return False, "options differ from the previous build"
    for rel, info in corpus.get("files", {}).items():
        path = os.path.join(text_dir, rel)
        if not os.path.isfile(path) or os.path.getsize(path) != info.get("bytes"):
            return False, f"{rel} is missing or changed"
    return True, ""


class _Split:
    def __init__(self):
        self.documents = self.bytes = 0
        self.unique_documents = self.unique_bytes = 0
        self.sources = {}

    def add(self, source, n_bytes, times):
        self.documents += times
        self.bytes += n_bytes * times
        self.unique_documents += 1
        self.unique_bytes += n_bytes
        s = self.sources.setdefault(source, {"documents": 0, "bytes": 0})
        s["documents"] += times
        s["bytes"] += n_bytes * times

    def as_json(self):
        return {"documents": self.documents, "bytes": self.bytes,
                "unique_documents": self.unique_documents, "unique_bytes": self.unique_bytes,
                "sources": dict(sorted(self.sources.items()))}


def _write_atomic(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line)
    os.replace(tmp, path)


class Builder:
    def __init__(self, args, log=print):
        self.args, self.log = args, log
        self.options = build_options(args)
        self.text_dir = os.path.join(args.out, "text")
        self.cache = fetch.Cache(args.cache, log=log)

    # -- documents ----------------------------------------------------------------------------
    def _documents(self, pool, budget_bytes, seen):
        """[(source name, doc id, text)] of one pool (sources sharing a budget), chunked, with
        exact duplicates (within the domain: `seen`) dropped. Under a budget, documents are
        produced in seeded sampling order until the budget is met."""
        cands = [(src.name, c.doc_id, c) for src, cs in pool for c in cs]
        order = splits.sample_order(cands, self.args.seed) if budget_bytes is not None else cands
        rank = {(s, d): i for i, (s, d, _) in enumerate(cands)}
        kept, total = [], 0
        for name, doc_id, cand in order:
            if budget_bytes is not None and total >= budget_bytes:
                break
            text = cand.produce()
            if not text or not text.strip():
                continue
            digest = hashlib.sha1(text.encode("utf-8")).digest()
            if digest in seen:
                continue
            seen.add(digest)
            total += utf8_len(text)
            kept.append((rank[(name, doc_id)], name, doc_id, text))
        if not kept:
            raise extract.ExtractError(f"{pool[0][0].name}: none of its {len(cands)} documents "
                                       f"could be extracted")
        kept.sort()
        out = []
        for _, name, doc_id, text in kept:
            chunks = chunk_text(text)
            for k, chunk in enumerate(chunks):
                out.append((name, doc_id if len(chunks) == 1 else f"{doc_id}#{k}", chunk))
        return out, total

    def _domain_pools(self, chosen):
        """{domain: [(pool label, [(Source, [Candidate])], budget bytes or None)]}"""
        by_domain, code_pools = {}, {}
        for src, cap_mb in chosen:
            self.log(f"[{src.domain}] {src.name}: listing")
            cands = src.extract(self.cache)
            if not cands:
                raise extract.ExtractError(f"source {src.name} produced no documents")
            if self.args.preset == "full" and src.lang:
                code_pools.setdefault(src.lang, []).append((src, cands))
                continue
            budget = None if cap_mb is None else cap_mb * MB
            by_domain.setdefault(src.domain, []).append((src.name, [(src, cands)], budget))
        if code_pools:
            sizes = {lang: sum(c.size_hint for _, cs in pool for c in cs)
                     for lang, pool in code_pools.items()}
            budgets = splits.water_fill(sizes, self.args.code_cap_mb * MB)
            for lang in sorted(code_pools):
                self.log(f"[code] {lang}: {sizes[lang] / MB:.0f} MB of files, "
                         f"sampling {budgets[lang] / MB:.0f} MB")
                by_domain.setdefault("code", []).append((f"code/{lang}", code_pools[lang], budgets[lang]))
        return by_domain

    # -- build --------------------------------------------------------------------------------
    def run(self):
        args, log = self.args, self.log
        ok, why = up_to_date(self.text_dir, self.options)
        if ok and not args.force:
            log(f"corpus in {self.text_dir} is up to date ({args.preset}, seed {args.seed}); "
                f"nothing to do (--force rebuilds)")
            self._summary(self._load_manifest())
            return 0
        log(f"building the {args.preset} corpus in {self.text_dir} ({why or 'forced'})")
        start = time.time()
        for d in ("train", "valid"):
            os.makedirs(os.path.join(self.text_dir, d), exist_ok=True)
        manifest_path = os.path.join(self.text_dir, "corpus.json")
        if os.path.exists(manifest_path):
            os.remove(manifest_path)  # an interrupted rebuild must not look complete

        chosen = sources.preset(args.preset)
        pools = self._domain_pools(chosen)
        upsample = self.options["upsample"]
        domains, files = {}, {}
        for domain in sources.DOMAINS:
            if domain not in pools:
                continue
            seen, docs = set(), []
            for label, pool, budget in pools[domain]:
                got, n_bytes = self._documents(pool, budget, seen)
                log(f"[{domain}] {label}: {len(got)} documents, {n_bytes / MB:.1f} MB")
                docs.extend(got)
            assigned = splits.assign_splits([(s, d) for s, d, _ in docs], args.seed, args.holdout)
            stats = {"train": _Split(), "valid": _Split()}
            lines = {"train": [], "valid": []}
            for (name, doc_id, text), split in zip(docs, assigned):
                times = upsample.get(domain, 1) if split == "train" else 1
                stats[split].add(name, utf8_len(text), times)
                lines[split].append(json.dumps({"domain": domain, "source": name, "id": doc_id,
                                                "text": text}, ensure_ascii=False) + "\n")
            for split in ("train", "valid"):
                rel = f"{split}/{domain}.jsonl"
                times = upsample.get(domain, 1) if split == "train" else 1
                # Upsampling repeats the whole split (like extra epochs), not each line in place.
                _write_atomic(os.path.join(self.text_dir, rel), lines[split] * times)
                files[rel] = {"bytes": os.path.getsize(os.path.join(self.text_dir, rel))}
            domains[domain] = {s: stats[s].as_json() for s in ("train", "valid")}

        self._remove_stale(files)
        corpus = {
            "builder": "experiments/corpus/build_corpus.py",
            "options": self.options,
            "domains": domains,
            "totals": {s: {k: sum(d[s][k] for d in domains.values())
                           for k in ("documents", "bytes", "unique_documents", "unique_bytes")}
                       for s in ("train", "valid")},
            "packages": dict(sorted(self.cache.fetched.items())),
            "files": files,
        }
        _write_atomic(manifest_path, [json.dumps(corpus, indent=1, ensure_ascii=False) + "\n"])
        log(f"built in {time.time() - start:.0f} s")
        self._summary(corpus)
        return 0

    def _remove_stale(self, files):
        """jsonl files of domains an earlier build wrote and this one does not."""
        for split in ("train", "valid"):
            d = os.path.join(self.text_dir, split)
            for fn in os.listdir(d):
                if fn.endswith(".jsonl") and f"{split}/{fn}" not in files:
                    os.remove(os.path.join(d, fn))

    def _load_manifest(self):
        with open(os.path.join(self.text_dir, "corpus.json"), encoding="utf-8") as f:
            return json.load(f)

    def _summary(self, corpus):
        log = self.log
        log(f"{'domain':<10} {'train docs':>10} {'train MB':>9} {'valid docs':>10} {'valid MB':>9}  sources")
        for domain, d in corpus["domains"].items():
            names = sorted(set(d["train"]["sources"]) | set(d["valid"]["sources"]))
            log(f"{domain:<10} {d['train']['documents']:>10} {d['train']['bytes'] / MB:>9.2f} "
                f"{d['valid']['documents']:>10} {d['valid']['bytes'] / MB:>9.2f}  {', '.join(names)}")
        t = corpus["totals"]
        log(f"{'total':<10} {t['train']['documents']:>10} {t['train']['bytes'] / MB:>9.2f} "
            f"{t['valid']['documents']:>10} {t['valid']['bytes'] / MB:>9.2f}  "
            f"(unique train text {t['train']['unique_bytes'] / MB:.2f} MB)")
        log(f"files: {self.text_dir}/{{train,valid}}/<domain>.jsonl, {self.text_dir}/corpus.json")


def check_packages(preset, log=print):
    """Resolves every package name of a preset (apt-cache policy / npm view) without downloading."""
    debs, npms = set(), set()
    for src, _ in sources.preset(preset):
        debs.update(src.debs)
        npms.update(src.npms)
    missing = []
    for name in sorted(debs):
        out = subprocess.run(["apt-cache", "policy", name], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        cand = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                     if ln.strip().startswith("Candidate:")), "(none)")
        log(f"deb {name}: {cand}")
        if cand == "(none)":
            missing.append(name)
    for spec in sorted(npms):
        proc = subprocess.run(["npm", "view", spec, "version"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        version = proc.stdout.strip() or "(none)"
        log(f"npm {spec}: {version}")
        if proc.returncode != 0 or version == "(none)":
            missing.append(spec)
    if missing:
        log(f"unresolved: {', '.join(missing)}")
        return 1
    log(f"all {len(debs) + len(npms)} packages resolve")
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("demo", "full"), required=True)
    p.add_argument("--out", required=True, help="output directory (text/ is written below it)")
    p.add_argument("--cache", help="download/unpack cache (default: DIR/../cache)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--holdout", type=float, default=0.05, help="held-out fraction of documents")
    p.add_argument("--code-cap-mb", type=float, default=200, help="full preset: MB of code kept")
    p.add_argument("--upsample", default="books=2,bio=2",
                   help="DOMAIN=TIMES,... repeats of the train split ('none' to disable)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.add_argument("--check-packages", action="store_true",
                   help="only check that every package of the preset resolves")
    args = p.parse_args(argv)
    if not 0 <= args.holdout < 1:
        p.error(f"--holdout must be in [0, 1), got {args.holdout}")
    if args.code_cap_mb <= 0:
        p.error(f"--code-cap-mb must be positive, got {args.code_cap_mb}")
    try:
        splits.parse_upsample(args.upsample)
    except ValueError as e:
        p.error(str(e))
    args.out = os.path.abspath(args.out)
    if args.cache is None:
        args.cache = os.path.join(os.path.dirname(args.out), "cache")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.check_packages:
            return check_packages(args.preset)
        return Builder(args).run()
    except EXPECTED_ERRORS as e:
        print(f"build_corpus: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_corpus: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
