#!/usr/bin/env bash
# Rebuild serving/web/vendor/cornerstone.js (Cornerstone3D, pinned by package-lock.json) and its licence list.
# The built file is committed, so a fresh clone, CI and an offline hospital host need neither Node nor npm; run this
# only to upgrade Cornerstone3D (edit package.json, then `bash serving/web/build/build.sh`).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../vendor
mkdir -p "$out"
./node_modules/.bin/esbuild entry.js --bundle --format=esm --minify --target=es2020 \
  --alias:xmlbuilder2=./empty.js --legal-comments=none --metafile=meta.json \
  --banner:js="/* Cornerstone3D $(node -p 'require("@cornerstonejs/core/package.json").version') for medai; licences: cornerstone.licenses.txt */" \
  --outfile="$out/cornerstone.js" --log-level=warning
node licenses.js meta.json > "$out/cornerstone.licenses.txt"
rm -f meta.json
ls -l "$out"
