#!/usr/bin/env bash
# Regenerates sample.export and sample.json with the real journald tools:
# entries as Docker's journald log driver writes them (its field names,
# tag: mailu-front / mailu-admin as Mailu's FAQ set, a compose v1 name with
# the default tag, a line Docker split in two, a binary MESSAGE, another
# unit's entry) are stored by systemd-journal-remote into a journal file,
# which journalctl then prints in both formats.
# Needs: python3, journalctl, systemd-journal-remote (Debian packages
# systemd and systemd-journal-remote).
set -euo pipefail
cd "$(dirname "$0")"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - > "$W/in.export" <<'PY'
import struct, sys
out = sys.stdout.buffer
FRONT = "4f1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ff"
ADMIN = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
SMTP = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
def entry(us, fields):
    out.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (us, us - 1795132800000000))
    for k, v in fields:
        if isinstance(v, str):
            v = v.encode()
        if b"\n" in v or any(c < 32 and c != 9 for c in v) or not utf8(v):
            out.write(k.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n")
        else:
            out.write(k.encode() + b"=" + v + b"\n")
    out.write(b"\n")
def utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
def docker(cid, name, tag, msg, partial=False):
    f = [("MESSAGE", msg), ("CONTAINER_ID", cid[:12]), ("CONTAINER_ID_FULL", cid),
         ("CONTAINER_NAME", name), ("CONTAINER_TAG", tag), ("SYSLOG_IDENTIFIER", tag),
         ("IMAGE_NAME", "ghcr.io/mailu/nginx:2024.06"), ("PRIORITY", "6")]
    if partial:
        f.append(("CONTAINER_PARTIAL_MESSAGE", "true"))
    return f
t0 = 1795132800000000  # 2026-11-20T00:00:00Z
entry(t0, docker(ADMIN, "mailu-admin-1", "mailu-admin",
    "[2026-11-20 00:00:00,000] INFO in nginx: Login attempt for: x@example.com/imap/993 from: 203.0.113.7/4000: failed: badauth: 000001"))
for i in range(12):
    entry(t0 + (10 + i) * 1000000 + 123, docker(FRONT, "mailu-front-1", "mailu-front",
        "Nov 20 00:00:%02d imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<u%d@example.com>, method=PLAIN, rip=203.0.113.9, rport=%d, lip=192.168.203.5, lport=993, TLS" % (10 + i, i, 4000 + i)))
# A username that is not UTF-8: journald keeps it binary.
entry(t0 + 30000000, docker(FRONT, "mailu-front-1", "mailu-front",
    b"Nov 20 00:00:30 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<\xff\xfe@example.com>, method=PLAIN, rip=203.0.113.10, rport=5000, lip=192.168.203.5, lport=993, TLS"))
# Another unit between the containers' entries.
entry(t0 + 31000000, [("MESSAGE", "Accepted publickey for root from 198.51.100.200 port 50000 ssh2"), ("SYSLOG_IDENTIFIER", "sshd"), ("_COMM", "sshd")])
# A line Docker split (16 KiB pieces in reality): two entries, the first partial.
entry(t0 + 32000000, docker(FRONT, "mailu-front-1", "mailu-front",
    "Nov 20 00:00:32 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<", partial=True))
entry(t0 + 32000001, docker(FRONT, "mailu-front-1", "mailu-front",
    "split@example.com>, method=PLAIN, rip=203.0.113.11, rport=5001, lip=192.168.203.5, lport=993, TLS"))
# Compose v1 name, the driver's default tag (the short id).
entry(t0 + 40000000, docker(SMTP, "mailu_smtp_1", SMTP[:12],
    "Nov 20 00:00:40 mail postfix/smtpd[412]: warning: unknown[203.0.113.20]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"))
PY
/lib/systemd/systemd-journal-remote -o "$W/remote.journal" - < "$W/in.export"
journalctl --file "$W/remote.journal" -o export > sample.export
journalctl --file "$W/remote.journal" -o json > sample.json
