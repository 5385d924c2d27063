#!/bin/sh
# Front of the bansd test bed: nginx's mail proxy and (2024.06) Dovecot's
# login proxy, both logging to the container's stderr, as Mailu's front does.
set -e
admin=""
for i in $(seq 1 100); do
	if out=$(getent hosts admin); then
		set -- $out
		admin=$1
		break
	fi
	sleep 0.1
done
[ -n "$admin" ] || { echo "front: cannot resolve admin" >&2; exit 1; }
mkdir -p /var/lib/nginx /run/dovecot /var/lib/dovecot /etc/dovecot
# A container restarted in place (restart: always after dockerd died) keeps
# its files: Dovecot's stale pid file names a pid that may now be nginx's,
# and Dovecot would refuse to start.
rm -f /run/dovecot/master.pid
if [ -f /conf/proxy.conf ]; then
	sed "s/{{ ADMIN_ADDRESS }}/$admin/" /conf/login.lua >/etc/dovecot/login.lua
	dovecot -F -c /conf/proxy.conf &
fi
exec nginx -c /conf/nginx.conf -g 'daemon off;'
