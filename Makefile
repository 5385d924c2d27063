# bansd: see README.md. `make test` and `make bench` need root (network
# namespaces, nftables, a private dockerd); nothing touches the host's own
# firewall.
GO      ?= go
BIN     ?= bin
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
GOFLAGS ?=
export CGO_ENABLED = 0

VERSION ?= $(shell sh scripts/version.sh)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
# File times in the archives: the commit's, so a rebuild repeats byte for byte.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# cobra dates the man pages from it too.
export SOURCE_DATE_EPOCH
LDFLAGS := -s -w -X github.com/bansd/bansd/internal/version.Version=$(VERSION) \
           -X github.com/bansd/bansd/internal/version.Commit=$(COMMIT)

.PHONY: all build docs test deps vet fuzz bench demo install uninstall dist clean

all: build

build:
	$(GO) build $(GOFLAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/bansd ./cmd/bansd
	$(GO) build $(GOFLAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/bansctl ./cmd/bansctl

# Man pages and completions come from the binaries' own flags and
# commands (bansd's generator only in a build with the genman tag); the
# installed config is the embedded default, commented out (an override
# file: what stays commented keeps the built-in value).
docs: build
	rm -rf $(BIN)/docs && mkdir -p $(BIN)/docs
	$(GO) run $(GOFLAGS) -tags genman -trimpath -ldflags '$(LDFLAGS)' ./cmd/bansd --gen-man $(BIN)/docs/man8
	$(BIN)/bansctl gen-docs $(BIN)/docs
	{ printf '%s\n' \
	    '# bansd overrides. Every key left commented keeps the built-in default shown' \
	    '# here (bansd --print-default-config prints it). Uncomment and change what you' \
	    '# need, check with: bansd --check --config /etc/bansd/bansd.toml' \
	    '# then apply with: systemctl reload bansd' ''; \
	  sed -e 's/^\([^#]\)/# \1/' configs/bansd.toml; } >$(BIN)/docs/bansd.toml

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The Debian packages the tests use (quiet when all are there).
deps:
	@bash scripts/deps.sh

# Everything, as root: unit, fuzz seeds, real kernel, real dockerd, end to end.
test: deps vet
	BANSD_TEST_ROOT=must $(GO) test -count=1 -timeout 45m ./...

# Short coverage-guided fuzzing of every fuzz target (not part of `test`):
# FUZZTIME each, every package that has one.
FUZZTIME ?= 30s
fuzz:
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
	    echo "$$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

bench: build
	bash bench/run.sh

demo:
	bash integration/demo.sh

# The files install puts in place, relative to DESTDIR; uninstall removes
# exactly these (the config only while it is still the shipped one).
MAN8     = $(PREFIX)/share/man/man8
COMPS    = $(PREFIX)/share/bash-completion/completions/bansctl \
           $(PREFIX)/share/zsh/vendor-completions/_bansctl \
           $(PREFIX)/share/fish/vendor_completions.d/bansctl.fish
DOCDIR   = $(PREFIX)/share/doc/bansd

install: docs
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/bansd $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(MAN8) $(foreach c,$(COMPS),$(DESTDIR)$(dir $(c))) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BIN)/bansd $(DESTDIR)$(PREFIX)/sbin/bansd
	install -m 0755 $(BIN)/bansctl $(DESTDIR)$(PREFIX)/bin/bansctl
	test -e $(DESTDIR)/etc/bansd/bansd.toml || install -m 0644 $(BIN)/docs/bansd.toml $(DESTDIR)/etc/bansd/bansd.toml
	sed -e 's|/usr/sbin/bansd|$(PREFIX)/sbin/bansd|g' configs/bansd.service >$(DESTDIR)$(UNITDIR)/bansd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/bansd.service
	install -m 0644 $(BIN)/docs/man8/*.8 $(DESTDIR)$(MAN8)/
	install -m 0644 $(BIN)/docs/completions/bansctl.bash $(DESTDIR)$(word 1,$(COMPS))
	install -m 0644 $(BIN)/docs/completions/_bansctl $(DESTDIR)$(word 2,$(COMPS))
	install -m 0644 $(BIN)/docs/completions/bansctl.fish $(DESTDIR)$(word 3,$(COMPS))
	install -m 0644 LICENSE $(DESTDIR)$(DOCDIR)/copyright
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now bansd"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/bansd $(DESTDIR)$(PREFIX)/bin/bansctl $(DESTDIR)$(UNITDIR)/bansd.service \
	  $(DESTDIR)$(MAN8)/bansd.8 $(DESTDIR)$(MAN8)/bansctl.8 $(DESTDIR)$(MAN8)/bansctl-*.8 \
	  $(foreach c,$(COMPS),$(DESTDIR)$(c)) $(DESTDIR)$(DOCDIR)/copyright
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@if [ -e $(DESTDIR)/etc/bansd/bansd.toml ] && [ -e $(BIN)/docs/bansd.toml ] && \
	    cmp -s $(DESTDIR)/etc/bansd/bansd.toml $(BIN)/docs/bansd.toml; then \
	  rm -f $(DESTDIR)/etc/bansd/bansd.toml; rmdir $(DESTDIR)/etc/bansd 2>/dev/null || true; \
	elif [ -e $(DESTDIR)/etc/bansd/bansd.toml ]; then \
	  echo "kept $(DESTDIR)/etc/bansd/bansd.toml (edited); remove it by hand if you want"; fi
	@echo "removed; the kernel bans stay until: nft delete table inet bansd"

# Release artifacts in dist/: the .deb, the tarball, the image archive
# (docker load) and SHA256SUMS. The staged tree is a packaging install.
dist:
	rm -rf dist && mkdir -p dist
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/dist/root PREFIX=/usr UNITDIR=/lib/systemd/system >/dev/null
	$(GO) run -trimpath ./internal/dist -version '$(VERSION)' -commit '$(COMMIT)' -mtime '$(SOURCE_DATE_EPOCH)' \
	  -root dist/root -scripts configs/deb -compose configs/compose.yml -out dist
	rm -rf dist/root

clean:
	rm -rf $(BIN) dist
