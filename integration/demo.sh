#!/usr/bin/env bash
# bansd demo (what `make demo` runs). As root on a Debian-like machine:
#   - installs what is missing (docker.io, docker-compose, nginx + mail module,
#     Dovecot with the Lua passdb, nftables, iproute2, openssl),
#   - builds bansd, bansctl and the test bed's stand-ins,
#   - starts a private dockerd in a network namespace and a Mailu-shaped
#     compose stack on it (real nginx and Dovecot in front, as Mailu 2024.06),
#   - starts a real Postfix (Debian's) in the dockerd namespace, delivering
#     postmaster's mail into a Maildir,
#   - starts bansd with its built-in config (only paths changed, plus an
#     email channel to that Postfix),
#   - attacks from one namespace while a legitimate user works from another,
#     and prints what happens, the alarm and digest emails bansd sent, and
#     bansctl history,
#   - removes everything it made, also when interrupted.
# Nothing touches the host's own network namespace or firewall.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID=$$
WORK=$(mktemp -d /tmp/bansd-demo.XXXXXX)
NS_D=bansd-demo-d$ID NS_A=bansd-demo-a$ID NS_L=bansd-demo-l$ID
export DOCKER_HOST=unix://$WORK/d.sock DOCKER_CONFIG=$WORK/cli
BANSD_PID="" DOCKERD_PID="" POLICY_RC="" PF_CONF=""
START=$EPOCHREALTIME

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
say() { printf '[%6.2fs] %s\n' "$(awk -v a="$EPOCHREALTIME" -v b="$START" 'BEGIN { print a - b }')" "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	echo
	bold "== cleaning up"
	if [ -n "$BANSD_PID" ]; then kill -TERM "$BANSD_PID" 2>/dev/null; wait "$BANSD_PID" 2>/dev/null; fi
	if [ -n "$PF_CONF" ]; then nsenter --net=/run/netns/"$NS_D" postfix -c "$PF_CONF" stop >/dev/null 2>&1; fi
	if [ -n "$DOCKERD_PID" ]; then
		docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
		kill -TERM "$DOCKERD_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DOCKERD_PID" 2>/dev/null
		wait "$DOCKERD_PID" 2>/dev/null
	fi
	# Whatever still runs in the demo's namespaces was started by the demo.
	for ns in "$NS_D" "$NS_A" "$NS_L"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns delete "$ns" 2>/dev/null
	done
	grep -o " $WORK[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$WORK"
	if [ -n "$POLICY_RC" ]; then rm -f /usr/sbin/policy-rc.d; fi
	echo "done."
	exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, dockerd, nftables)"

bold "== packages"
need=()
for p in docker.io docker-compose nginx libnginx-mod-mail dovecot-core dovecot-imapd dovecot-pop3d \
	dovecot-submissiond dovecot-managesieved dovecot-auth-lua postfix nftables iproute2 openssl util-linux; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	# The demo runs nginx and Dovecot in containers and Postfix in its
	# namespace only: keep the packages' own services from starting on the host.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && POLICY_RC=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "all present"

bold "== build"
GO=$(command -v go || echo /usr/local/go/bin/go)
[ -x "$GO" ] || die "Go not found (PATH or /usr/local/go)"
mkdir -p "$WORK/bin"
for p in cmd/bansd cmd/bansctl integration/admin integration/backend integration/cmd/mailclient; do
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -o "$WORK/bin/" "./$p")
done
B=$WORK/bin
echo "built: $(ls "$B" | tr '\n' ' ')"

bold "== network namespaces: dockerd host, attacker, legitimate user"
ip netns add "$NS_D"; ip netns add "$NS_A"; ip netns add "$NS_L"
in_d() { nsenter --net=/run/netns/"$NS_D" "$@"; }
for ns in "$NS_D" "$NS_A" "$NS_L"; do ip netns exec "$ns" ip link set lo up; done
link() { # ns peer-if host-if net3 net6
	ip link add "$2" netns "$1" type veth peer name "$3" netns "$NS_D"
	ip -n "$NS_D" addr add "$4.1/24" dev "$3"
	ip -n "$NS_D" -6 addr add "$5::1/64" dev "$3" nodad
	ip -n "$NS_D" link set "$3" up
	ip -n "$1" addr add "$4.2/24" dev "$2"
	ip -n "$1" -6 addr add "$5::2/64" dev "$2" nodad
	ip -n "$1" link set "$2" up
	ip -n "$1" route add default via "$4.1"
	ip -n "$1" -6 route add default via "$5::1"
}
link "$NS_A" va$ID ha$ID 198.51.100 2001:db8:1
ip -n "$NS_A" addr add 198.51.100.3/24 dev va$ID
link "$NS_L" vl$ID hl$ID 203.0.113 2001:db8:2
echo "attacker 198.51.100.2 and .3, legitimate user 203.0.113.2; the Mailu host answers on .1"

bold "== dockerd (private, in the namespace)"
mkdir -p "$WORK/cli"
echo '{}' >"$WORK/daemon.json"
nsenter --net=/run/netns/"$NS_D" dockerd --config-file "$WORK/daemon.json" \
	--data-root "$WORK/root" --exec-root "$WORK/x" -H "$DOCKER_HOST" --pidfile "$WORK/d.pid" \
	--storage-driver=vfs --bip 192.0.2.1/25 --default-address-pool base=192.0.2.128/25,size=28 \
	--containerd-namespace "$NS_D" --containerd-plugins-namespace "$NS_D-p" \
	--shutdown-timeout 2 >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version --format 'Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})' || die "dockerd did not start: $(tail -5 "$WORK/dockerd.log")"

bold "== Mailu-shaped stack (project mailu: front = real nginx + Dovecot, admin, smtp, imap)"
R=$WORK/rootfs
mkdir -p "$R"/{usr,etc/ssl,etc/dovecot,proc,sys,dev,run,var/lib/nginx,var/lib/dovecot,var/log/nginx,certs,conf,tmp}
chmod 1777 "$R/tmp"
for l in bin:usr/bin sbin:usr/sbin lib:usr/lib lib64:usr/lib64; do ln -s "${l#*:}" "$R/${l%%:*}"; done
cp "$ROOT/integration/mailu/rootfs/etc/passwd" "$ROOT/integration/mailu/rootfs/etc/group" "$R/etc/"
cp "$B/admin" "$B/backend" "$R/"
tar -C "$R" -c . | docker import - ghcr.io/mailu/nginx:2024.06 >/dev/null
for i in admin postfix dovecot; do docker tag ghcr.io/mailu/nginx:2024.06 ghcr.io/mailu/$i:2024.06; done
mkdir -p "$WORK/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=mail.example.com \
	-keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" 2>/dev/null
chmod 644 "$WORK/certs/"*.pem
chmod 755 "$WORK" "$WORK/certs"
export MAILU_CERTS=$WORK/certs MAILU_VERSION=2024.06
docker-compose -p mailu -f "$ROOT/integration/mailu/docker-compose.yml" up -d 2>&1 | grep -v '^$' | sed 's/^/  /'

mc() { local ns=$1; shift; ip netns exec "$ns" "$B/mailclient" "$@"; }
outcome() { sed -n 's/.*"outcome":"\([a-z]*\)".*/\1/p' | head -1; }
detail() { sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' | head -1; }
for _ in $(seq 100); do
	[ "$(mc "$NS_L" login -addr 203.0.113.1:993 -proto imaps -user alice@example.com -pass alice-password -timeout 3s | outcome)" = success ] && break
	sleep 0.3
done
docker ps --format '  {{.Names}}\t{{.Image}}\t{{.Status}}'

bold "== Postfix for postmaster@example.com (Debian's, in the dockerd namespace on 127.0.0.1:2525, into a Maildir)"
# As internal/postfixtest sets it up: its own config, queue and Maildir
# under $WORK, no chroot, every recipient of example.com to one Maildir.
PF=$WORK/postfix
mkdir -p "$PF"/conf "$PF"/queue "$PF"/data "$PF"/mail
chown postfix:postfix "$PF/data"
chown 65534:65534 "$PF/mail" # virtual(8) delivers as nobody, never as root
cat >"$PF/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.com
mydomain = example.com
myorigin = example.com
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
virtual_mailbox_domains = example.com
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:postmaster/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
smtputf8_enable = no
disable_dns_lookups = yes
EOF
cat >"$PF/conf/master.cf" <<EOF
127.0.0.1:2525 inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
PF_CONF=$PF/conf
in_d postfix -c "$PF_CONF" start 2>&1 | sed 's/^/  /'
MAILDIR=$PF/mail/postmaster
echo "postfix listens on 127.0.0.1:2525; postmaster's Maildir: $MAILDIR"

bold "== bansd (built-in config; only the socket, the state file, the Docker socket and an email channel set)"
cat >"$WORK/bansd.toml" <<EOF
[daemon]
socket = "$WORK/bansd.sock"
state = "$WORK/bansd.db"
[docker]
host = "$DOCKER_HOST"
[notify]
digest = "20s"
[notify.email.postmaster]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "bansd@example.com"
to = ["postmaster@example.com"]
EOF
sed -n '/^\[notify/,$p' "$WORK/bansd.toml" | sed 's/^/  /'
in_d "$B/bansd" -config "$WORK/bansd.toml" >"$WORK/bansd.log" 2>&1 &
BANSD_PID=$!
ctl() { in_d "$B/bansctl" --socket "$WORK/bansd.sock" "$@"; }
for _ in $(seq 100); do
	[ "$(ctl status 2>/dev/null | grep -cE '^(front|admin) +attached')" = 2 ] && break
	kill -0 "$BANSD_PID" 2>/dev/null || die "bansd exited: $(tail -5 "$WORK/bansd.log")"
	sleep 0.2
done
echo "bansd is following mailu's front and admin"
bold "== bansctl notify test"
ctl notify test

bold "== timeline"
START=$EPOCHREALTIME
r=$(mc "$NS_L" login -addr 203.0.113.1:993 -proto imaps -user alice@example.com -pass alice-password | outcome)
say "alice (203.0.113.2) logs in over IMAPS: $r"
for i in 1 2 3 4 5; do
	sleep 0.05
	r=$(mc "$NS_A" login -addr 198.51.100.1:25 -proto smtp -user "admin$i@example.com" -pass x -source 198.51.100.2 -timeout 3s)
	say "bot 198.51.100.2 → port 25 AUTH as admin$i@example.com: $(echo "$r" | outcome) ($(echo "$r" | detail))"
done
for _ in $(seq 50); do [ "$(mc "$NS_A" probe -addr 198.51.100.1:25 -source 198.51.100.2 -timeout 0.3s | outcome)" = timeout ] && break; done
say "bansd: $(grep -o 'msg=ban target=198.51.100.2/[^"]*"[^"]*"' "$WORK/bansd.log" | head -1)"
say "guesser 198.51.100.3 → 10 IMAP logins as alice with 10 passwords, in parallel"
say "  (the bot's 5 AUTHs filled Mailu's limit of 5/hour for 198.51.100.0/24: admin refuses them all)"
pids=()
for i in $(seq 10); do
	mc "$NS_A" login -addr 198.51.100.1:143 -proto imap -user alice@example.com -pass "guess-$i" -source 198.51.100.3 -timeout 4s >"$WORK/guess$i" &
	pids+=($!)
done
wait "${pids[@]}"
say "  outcomes:$(for f in "$WORK"/guess*; do outcome <"$f"; done | sort | uniq -c | tr -s ' ' | tr '\n' ',' | sed 's/,$//') (timeout: the ban cut the session)"
say "bansd: $(grep -o 'msg=ban target=198.51.100.3/[^"]*"[^"]*"' "$WORK/bansd.log" | head -1)"
pids=()
for port in 25 465 587 110 995 143 993 4190; do
	mc "$NS_A" probe -addr 198.51.100.1:$port -source 198.51.100.2 -timeout 1s >"$WORK/probe$port" &
	pids+=($!)
done
wait "${pids[@]}"
res=""
for port in 25 465 587 110 995 143 993 4190; do res+=" $port:$(outcome <"$WORK/probe$port")"; done
say "bot 198.51.100.2 connects to every published port (timeout: SYN dropped):$res"
res=""
for p in submission:587 imaps:993 pop3s:995 sieve:4190; do
	res+=" ${p%%:*}:$(mc "$NS_L" login -addr 203.0.113.1:${p#*:} -proto ${p%%:*} -user alice@example.com -pass alice-password | outcome)"
done
say "alice meanwhile:$res"
say "front logged $(docker logs mailu_front_1 2>&1 | grep -c 'client login failed') nginx and $(docker logs mailu_front_1 2>&1 | grep -c '(auth failed,') Dovecot failures; admin $(docker logs mailu_admin_1 2>&1 | grep -c ': failed: ') failed logins and $(docker logs mailu_admin_1 2>&1 | grep -c 'has been rate-limited') limiter refusals"

bold "== bansctl list"
ctl list
bold "== bansctl why 198.51.100.3"
ctl why 198.51.100.3
bold "== bansctl status"
ctl status
bold "== bansctl doctor"
in_d "$B/bansctl" doctor --config "$WORK/bansd.toml" --docker-host "$DOCKER_HOST" || echo "(doctor exits $? on a FAIL: this private dockerd runs with Docker's default userland proxy)"
bold "== bansctl unban 198.51.100.2"
ctl unban 198.51.100.2
sleep 0.2
say "bot 198.51.100.2 → port 25 after unban: $(mc "$NS_A" probe -addr 198.51.100.1:25 -source 198.51.100.2 -timeout 1s | outcome)"

# mailbody prints a delivered message: the headers of interest, then the
# body with quoted-printable undone.
mailbody() {
	sed -n '1,/^\r\?$/{/^\(Subject\|From\|To\|Date\):/p}' "$1"
	echo
	sed '1,/^\r\?$/d' "$1" | perl -pe 's/\r$//; s/=\n$//; s/=([0-9A-F]{2})/chr(hex($1))/ge'
}
waitmail() { # subject-pattern seconds
	local f
	for _ in $(seq $(($2 * 5))); do
		f=$(grep -l -- "^Subject: .*$1" "$MAILDIR"/new/* 2>/dev/null | head -1)
		if [ -n "$f" ]; then echo "$f"; return 0; fi
		sleep 0.2
	done
	return 1
}
bold "== the alarm, as it arrived in postmaster's Maildir"
if f=$(waitmail 'ALARM' 60); then
	echo "file: $f"
	mailbody "$f" | sed 's/^/  /'
else
	echo "no alarm email within 60s; postfix log:"
	tail -20 "$PF/maillog"
fi
bold "== the ban digest, as it arrived (bansd sums bans up every notify.digest, here 20s)"
if f=$(waitmail 'bans since' 60); then
	echo "file: $f"
	mailbody "$f" | sed 's/^/  /'
else
	echo "no digest email within 60s; postfix log:"
	tail -20 "$PF/maillog"
fi
bold "== bansctl history"
ctl history
