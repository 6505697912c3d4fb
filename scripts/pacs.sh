#!/usr/bin/env bash
# A PACS for the tests, from Debian's packages: Orthanc with its DICOMweb plugin.
#   scripts/pacs.sh install                       install orthanc, orthanc-dicomweb and dicom3tools
#                                                 (dciodvfy checks the objects labelhost writes)
#                                                 when missing
#   scripts/pacs.sh run DIR HTTP_PORT DICOM_PORT  run one on 127.0.0.1 in the foreground,
#                                                 its database and config in DIR; DICOMweb at
#                                                 http://127.0.0.1:HTTP_PORT/dicom-web
set -euo pipefail
plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
case "${1:-}" in
    install)
        [ -x /usr/sbin/Orthanc ] && [ -f "$plugin" ] && [ -x /usr/bin/dciodvfy ] && exit 0
        "$(dirname "$0")/apt-install.sh" pacs orthanc orthanc-dicomweb dicom3tools
        ;;
    run)
        dir=$2 http=$3 dicom=$4
        mkdir -p "$dir/db"
        cat > "$dir/orthanc.json" <<JSON
{
  "Name": "labelhost-test-pacs",
  "StorageDirectory": "$dir/db",
  "IndexDirectory": "$dir/db",
  "HttpPort": $http,
  "DicomPort": $dicom,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpTimeout": 60,
  "Plugins": ["$plugin"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado",
               "Ssl": false, "StudiesMetadata": "Full", "SeriesMetadata": "Full"}
}
JSON
        exec /usr/sbin/Orthanc "$dir/orthanc.json"
        ;;
    *)
        echo "usage: scripts/pacs.sh install | run DIR HTTP_PORT DICOM_PORT" >&2
        exit 2
        ;;
esac
