"""Seeded, order-independent decisions: which documents are held out, which are kept by a size
cap, how a cap is shared between languages.

Every decision hashes (purpose, seed, source, document id), so it does not depend on the order in
which documents are found, on other documents, or on the Python version; the same options give
the same split on any machine. Sampling and holdout use different purposes so that a capped
source does not end up with a skewed held-out fraction.
"""
import hashlib


def unit_hash(purpose, seed, source, doc_id):
    """A uniform number in [0, 1) for (purpose, seed, source, doc_id)."""
    key = f"{purpose}\0{seed}\0{source}\0{doc_id}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0 ** 64


def is_holdout(source, doc_id, seed, fraction):
    return unit_hash("holdout", seed, source, doc_id) < fraction


def assign_splits(keys, seed, fraction):
    """keys: [(source, doc_id)] of one domain. Returns a parallel list of "train"/"valid": held out
    by hash, and, when the hash holds out nothing (tiny domains) but there are at least two
    documents and fraction > 0, the document with the smallest hash is held out."""
    hashes = [unit_hash("holdout", seed, s, d) for s, d in keys]
    splits = ["valid" if h < fraction else "train" for h in hashes]
    if fraction > 0 and len(keys) >= 2 and "valid" not in splits:
        splits[min(range(len(keys)), key=hashes.__getitem__)] = "valid"
    if len(keys) >= 2 and "train" not in splits:
        splits[max(range(len(keys)), key=hashes.__getitem__)] = "train"
    return splits


def sample_order(candidates, seed):
    """candidates: [(source, doc_id, ...)]; returns them in the seeded sampling order."""
    return sorted(candidates, key=lambda c: unit_hash("sample", seed, c[0], c[1]))


def water_fill(sizes, cap):
    """Shares `cap` between pools of the given sizes ({name: size}) as evenly as possible: pools
    smaller than the fair share keep everything, the rest split what is left equally."""
    budget, left, pools = {}, cap, sorted(sizes, key=lambda k: (sizes[k], k))
    for i, name in enumerate(pools):
        share = left / (len(pools) - i)
        budget[name] = min(sizes[name], share)
        left -= budget[name]
    return budget


def parse_upsample(spec):
    """"books=2,bio=2" -> {"books": 2, "bio": 2}; "none" or "" -> {}."""
    out = {}
    if spec.strip().lower() in ("", "none"):
        return out
    for item in spec.split(","):
        name, sep, times = item.partition("=")
        if not sep or not name.strip() or not times.strip().isdigit() or int(times) < 1:
            raise ValueError(f"--upsample: expected DOMAIN=TIMES[,DOMAIN=TIMES], got {item!r}")
        out[name.strip()] = int(times)
    return out
