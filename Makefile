# bansd: see README.md. `make test` and `make bench` need root (network
# namespaces, nftables, a private dockerd); nothing touches the host's own
# firewall.
GO      ?= go
BIN     ?= bin
PREFIX  ?= /usr/local
GOFLAGS ?=
export CGO_ENABLED = 0

.PHONY: all build test vet fuzz bench demo install clean

all: build

build:
	$(GO) build $(GOFLAGS) -trimpath -o $(BIN)/bansd ./cmd/bansd
	$(GO) build $(GOFLAGS) -trimpath -o $(BIN)/bansctl ./cmd/bansctl

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Everything, as root: unit, fuzz seeds, real kernel, real dockerd, end to end.
test: vet
	$(GO) test -count=1 -timeout 25m ./...

# Short coverage-guided fuzzing of every parser (not part of `test`).
fuzz:
	@for f in $$($(GO) test -list 'Fuzz.*' ./jail | grep ^Fuzz); do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s ./jail || exit 1; done

bench: build
	bash bench/run.sh

demo:
	bash integration/demo.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/bansd $(DESTDIR)/etc/systemd/system
	install -m 0755 $(BIN)/bansd $(DESTDIR)$(PREFIX)/sbin/bansd
	install -m 0755 $(BIN)/bansctl $(DESTDIR)$(PREFIX)/bin/bansctl
	test -e $(DESTDIR)/etc/bansd/bansd.toml || install -m 0644 configs/bansd.toml $(DESTDIR)/etc/bansd/bansd.toml
	install -m 0644 configs/bansd.service $(DESTDIR)/etc/systemd/system/bansd.service
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now bansd"

clean:
	rm -rf $(BIN)
