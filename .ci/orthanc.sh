#!/usr/bin/env bash
# Start/stop a private Orthanc (+ DICOMweb plugin) on free loopback ports with a temporary config.
#   .ci/orthanc.sh start STATE_DIR   -> prints "HTTP_PORT DICOM_PORT PID"; waits until the REST API answers
#   .ci/orthanc.sh stop STATE_DIR
# Needs `Orthanc` and the DICOMweb plugin (.ci/services.sh installs them). Exit 3 when Orthanc is not installed.
set -euo pipefail
cmd=${1:?start|stop}; state=${2:?state dir}
mkdir -p "$state"
if [ "$cmd" = stop ]; then
  [ -f "$state/pid" ] && kill "$(cat "$state/pid")" 2>/dev/null || true
  exit 0
fi
command -v Orthanc >/dev/null || { echo "Orthanc is not installed (run .ci/services.sh)" >&2; exit 3; }
plugin=""
for p in /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/libOrthancDicomWeb.so*; do
  [ -e "$p" ] && { plugin=$p; break; }
done
[ -n "$plugin" ] || { echo "the Orthanc DICOMweb plugin is not installed (orthanc-dicomweb)" >&2; exit 3; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port); dicom=$(free_port)
cat > "$state/orthanc.json" <<JSON
{
  "Name": "medai-test-orthanc",
  "HttpPort": $http,
  "DicomPort": $dicom,
  "StorageDirectory": "$state/storage",
  "IndexDirectory": "$state/index",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": ["$plugin"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "EnableWado": false}
}
JSON
Orthanc "$state/orthanc.json" >"$state/orthanc.log" 2>&1 &
pid=$!
echo "$pid" > "$state/pid"
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$http/system', timeout=1)" 2>/dev/null; then
    echo "$http $dicom $pid"; exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { echo "Orthanc exited; see $state/orthanc.log" >&2; tail -5 "$state/orthanc.log" >&2; exit 1; }
  sleep 0.2
done
echo "Orthanc did not answer on port $http" >&2; kill "$pid" || true; exit 1
