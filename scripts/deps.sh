#!/usr/bin/env bash
# Installs the Debian packages bansd's tests, benchmarks and demo use.
# Idempotent: does nothing when everything is there.
set -euo pipefail
pkgs=(docker.io docker-compose nftables iptables iproute2 busybox-static fail2ban openssl
      nginx libnginx-mod-mail dovecot-core dovecot-imapd dovecot-pop3d
      dovecot-submissiond dovecot-managesieved dovecot-auth-lua util-linux python3 python3-pyinotify ipset
      crowdsec postfix curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services (dockerd, nginx, dovecot)
  # from starting in the host namespace.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # crowdsec: a commented-out Central API credentials file before the
  # install keeps it offline (README.Debian): tests run only its LAPI, in
  # their own namespaces (internal/crowdsectest).
  if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
    mkdir -p /etc/crowdsec && echo '# offline: bansd tests use only the Local API' >/etc/crowdsec/online_api_credentials.yaml
  fi
  # Postfix asks who it should be; tests run it from their own config
  # directory (internal/postfixtest), so the system one stays unconfigured.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "deps.sh: installed ${#missing[@]} package(s)"
fi
