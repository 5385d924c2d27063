#!/usr/bin/env bash
# make bench: every performance target of bansd, measured here, as root.
# Each section prints its own numbers; baselines (fail2ban-regex, docker
# logs) run in the same command so that the ratios compare like with like.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make bench needs root (network namespaces, nftables, dockerd)" >&2; exit 1; }
bash scripts/deps.sh

section() { printf '\n######## %s\n' "$*"; }
gobench() { go test -count=1 -run '^$' "$@" 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu|PASS)'; }

section "jail engine in memory (parser + windows), lines/s"
gobench -bench '^Benchmark(EngineProcess|EngineProcessAllowed|ParserOnly|MillionDistinct)$' -benchtime 2s ./jail

section "bansctl replay vs fail2ban-regex; peak RSS with 1M distinct attackers"
bash bench/replay.sh

section "ban manager: restore 100k, apply 100k, decision-to-kernel latency, a 100k blocklist swapped (vs Unban+BanMany)"
gobench -bench '^Benchmark(Restore100k|BanMany100k|LatencyIdle|LatencyAt1000PerSecond|Reconcile100k|ReplaceJail100k)$' -benchtime 3x ./ban
section "ban manager: idle CPU with 100k bans over a minute (30 s reconcile: generation check, full listing only after a change)"
gobench -bench '^BenchmarkIdle100k$' -benchtime 1x ./ban

section "bansd daemon: idle RSS with 10k bans; with 100k bans: exec to all in the kernel, idle RSS, idle CPU over a minute"
gobench -bench '^BenchmarkDaemon(Idle10k|100k)$' -benchtime 1x -timeout 10m ./cmd/bansd

section "control API: bansctl list with 100k bans, ban --from-file 100k"
gobench -bench '^Benchmark(BanFromFile100k|List100k)$' -benchtime 1x ./cmd/bansd

section "Docker source vs docker logs of the same container"
gobench -bench '^BenchmarkDockerSource$' -benchtime 1x ./sources/docker

section "warm-up: bansd start-up to the first live line with an hour of a busy stack's logs (150k lines, 3 containers) behind its cursors, vs docker logs of the same"
gobench -bench '^BenchmarkWarmupStartup$' -benchtime 3x -timeout 10m ./cmd/bansd

section "live daemon: CPU per million lines of bansd, dockerd and fail2ban-server on the same container's Mailu mix; lag; RSS (peak, 200k tracked addresses); the floor: bansd beside curl and docker logs receiving the same stream"
gobench -bench '^BenchmarkLiveDaemon$' -benchtime 1x -timeout 30m ./integration

section "end to end: failed attempt to first dropped packet, real Docker log path (20 runs)"
gobench -bench '^BenchmarkBanLatency$' -benchtime 20x -timeout 20m ./integration

section "end to end: the same attack against Fail2Ban 1.0.2 as Mailu's FAQ sets it up"
gobench -bench '^BenchmarkFail2BanVsBansd$' -benchtime 3x -timeout 20m ./integration

section "two hosts through CrowdSec LAPI: ban on A to element in B's kernel set (1 s pull, 60 runs)"
gobench -bench '^BenchmarkCrowdSecShare$' -benchtime 60x -timeout 10m ./cmd/bansd

section "CrowdSec startup: bansd started against a LAPI holding 100,000 decisions: time to all enforced in the kernel, bansd's peak RSS"
gobench -bench '^BenchmarkCrowdSecStartup100k$' -benchtime 1x -timeout 10m ./cmd/bansd
