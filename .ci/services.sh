#!/usr/bin/env bash
# Install the system tools the tests use: dcmtk (dcmdump/dciodvfy checks) and Orthanc with its DICOMweb plugin
# (the real-PACS integration test starts its own instance on loopback) and PostgreSQL (.ci/postgres.sh). Idempotent; needs root (CI runs as root).
set -euo pipefail
need=()
command -v dcmdump >/dev/null || need+=(dcmtk)
command -v dciodvfy >/dev/null || need+=(dicom3tools)  # dciodvfy: IOD validator for the SEG/SR tests
command -v Orthanc >/dev/null || need+=(orthanc orthanc-dicomweb)
command -v chromium >/dev/null || need+=(chromium)  # tests/web: Playwright drives Debian's Chromium
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)  # the PostgreSQL backend tests
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "not root: cannot apt-get install ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the Debian package starts a system Orthanc; the tests run their own on a free loopback port
  (service orthanc stop || true) >/dev/null 2>&1
  (service postgresql stop || true) >/dev/null 2>&1  # likewise: .ci/postgres.sh starts a throwaway cluster
fi
