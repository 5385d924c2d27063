#!/usr/bin/env bash
# CI: build the release artifacts, install the .deb with dpkg as an admin
# would, check the installed config and unit, then purge and check that
# nothing is left. Runs as root; starts no unit (CI has no systemd).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory dist
deb=$(ls dist/bansd_*_amd64.deb)
(cd dist && sha256sum -c --quiet SHA256SUMS)
dpkg -i "$deb"
trap 'dpkg --purge bansd >/dev/null 2>&1 || true' EXIT
dpkg-query -W -f='${Conffiles}\n' bansd | grep -q '/etc/bansd/bansd.toml'
/usr/sbin/bansd --version
/usr/bin/bansctl version
/usr/sbin/bansd --check --config /etc/bansd/bansd.toml
grep -q '^ExecStart=/usr/sbin/bansd --config /etc/bansd/bansd.toml' /lib/systemd/system/bansd.service
if ! command -v systemd-analyze >/dev/null; then
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
# verify loads the unit and its ExecStart binary without starting anything.
systemd-analyze verify /lib/systemd/system/bansd.service
man -w bansd >/dev/null 2>&1 || test -e /usr/share/man/man8/bansd.8
dpkg -r bansd
test ! -e /usr/sbin/bansd
test -e /etc/bansd/bansd.toml   # remove keeps the conffile
dpkg --purge bansd
trap - EXIT
for p in /etc/bansd /var/lib/bansd /usr/sbin/bansd /usr/bin/bansctl /lib/systemd/system/bansd.service; do
  if [ -e "$p" ]; then echo "left after purge: $p" >&2; exit 1; fi
done
echo "deb: install, check, verify, remove, purge: ok"
