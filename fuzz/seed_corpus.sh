#!/usr/bin/env bash
# Seed a fuzz target's corpus from the conformance golden vectors.
#
#   fuzz/seed_corpus.sh TARGET [VECTOR_DIR...]
#
# Every VECTOR_DIR/*.json vector's "hex" field is written, as raw bytes, to
# fuzz/corpus/TARGET/<vector file name without .json> (other corpus entries are kept).
# Without VECTOR_DIR the directory follows the target's name prefix:
#   mih_user_x2ap* -> conformance/vectors/x2ap
#   mih_*, mihf_*  -> conformance/vectors/mih
#   cxtp_* -> conformance/vectors/cxtp
# Other targets get no seeds (not an error). Needs python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target="${1:?usage: fuzz/seed_corpus.sh TARGET [VECTOR_DIR...]}"
shift
dirs=("$@")
if ((${#dirs[@]} == 0)); then
  case "$target" in
    mih_user_x2ap*) dirs=("$root/conformance/vectors/x2ap") ;;
    mih_user_*) dirs=() ;;
    mih_* | mihf_*) dirs=("$root/conformance/vectors/mih") ;;
    cxtp_*) dirs=("$root/conformance/vectors/cxtp") ;;
    *) dirs=() ;;
  esac
fi
if ((${#dirs[@]} == 0)); then
  echo "seed_corpus: no vector directory for '$target' (pass one)"
  exit 0
fi
out="$here/corpus/$target"
mkdir -p "$out"
python3 - "$out" "${dirs[@]}" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
n = 0
for d in map(pathlib.Path, sys.argv[2:]):
    for f in sorted(d.glob("*.json")):
        v = json.loads(f.read_text())
        h = v.get("hex") if isinstance(v, dict) else None
        if not isinstance(h, str):
            continue
        (out / f.stem).write_bytes(bytes.fromhex(h.replace(" ", "")))
        n += 1
print(f"seed_corpus: {n} seeds from {', '.join(sys.argv[2:])} -> {out}")
PY
