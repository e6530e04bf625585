#!/usr/bin/env bash
# The generated units pass `systemd-analyze verify`, and the service's offline security exposure
# stays at or below 2.0 ("OK"). ExecStart is pointed at the freshly built binary, which is all
# that differs from the installed unit.
set -euo pipefail
units=$1 binary=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$units/accountsd.service" > "$work/accountsd.service"
cp "$units/accountsd.socket" "$work/"
systemd-analyze verify "$work/accountsd.service" "$work/accountsd.socket"
exposure=$(systemd-analyze security --offline=true "$work/accountsd.service" 2>&1 | sed -n 's/.*Overall exposure level for accountsd.service: \([0-9.]*\).*/\1/p')
echo "exposure: $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }'
