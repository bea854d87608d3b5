# uplinkd — see README.md. Every target works from a fresh clone, as root.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     ?= bin

# make install: the binary, the systemd unit, the example hooks and, unless
# one exists already, the reference configuration. Staged installs and
# packages set DESTDIR.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DATADIR    ?= $(PREFIX)/share/uplinkd
SYSCONFDIR ?= /etc

.PHONY: all build test test-long test-unit lint fuzz demo figures bench bench-scale install clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/uplinkd ./cmd/uplinkd
	$(GO) build -o $(BIN)/labtool ./test/labtool

# The whole suite: the programs the lab tests use (test/deps.sh installs the
# missing ones as root), unit tests with the race detector, then the
# privileged network-namespace tests (they skip without root unless
# UPLINKD_REQUIRE_PRIV=1), then the bench harness's own unit tests (not the
# bench: make bench). The lab tests take 9 to 11 minutes on a busy 2-CPU
# machine, beyond go test's default limit of 10 minutes per package.
test:
	test/deps.sh
	$(GO) test -race -count=1 -timeout 20m ./...
	cd bench && $(GO) test -race -count=1 ./...

# The suite with the long variants of the lab tests (UPLINKD_LONG=1): 60s
# under load and loss, 20 timed blackholes, 300 random convergence
# sequences, 50 kill -9 and restarts: several minutes more.
test-long:
	test/deps.sh
	UPLINKD_LONG=1 $(GO) test -race -count=1 -timeout 30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	cd bench && $(GO) vet ./...
	$(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	cd bench && $(abspath $(BIN))/staticcheck ./...

# Every fuzz target for FUZZTIME each, FUZZJOBS targets at a time with one
# fuzzing worker each (go test -fuzz takes one target per run). A finding
# stops it; the failing input is saved under the package's testdata/fuzz/
# and becomes a regression test once committed. test/fuzz.sh runs a target
# again when Go 1.26's coordinator fails it with a bare "context deadline
# exceeded" and no saved input (golang/go#75804).
FUZZTIME ?= 60s
FUZZJOBS ?= 2
FUZZ := ./config:FuzzParse ./events:FuzzParseMessage \
	./netops:FuzzParseNexthop ./netops:FuzzParseNHIDRoute ./netops:FuzzParseKernelRoute \
	./pin:FuzzJumpTarget \
	./probe:FuzzParseEcho ./probe:FuzzMatch ./probe:FuzzDNSAnswered \
	./probe:FuzzParseEcho6 ./probe:FuzzMatch6
fuzz:
	@printf '%s\n' $(FUZZ) | xargs -P $(FUZZJOBS) -n 1 sh -c \
		'sh test/fuzz.sh "$(GO)" "$${0%%:*}" "$${0#*:}" "$(FUZZTIME)"'

# A lab of network namespaces with two simulated ISPs; uplinkd runs in the
# router namespace while uplinks are broken and repaired. Needs root.
demo: build
	$(BIN)/labtool demo --uplinkd $(BIN)/uplinkd

# Failover figures (carrier loss, blackhole, UDP outage) measured in the lab,
# the flows table of docs/flows.md (connections moved on failover and return
# per balancer), a carrier failover with 200k conntrack entries, and the
# time of a conntrack flush by mark in a table of 200k entries.
figures: build
	UPLINKD_FIGURES=1 $(GO) test -count=1 -v -run 'TestFigures' ./test/ ./pin/

# uplinkd beside the seed it replaces, in the namespace lab: failover and
# recovery figures, flows moved, new connections, with plots (bench/, its
# own Go module). Writes bench/results/results.{md,json} and timeline.png.
# Needs root; installs the seed's tools if missing; about 10 minutes.
bench: build
	bench/deps.sh
	cd bench && $(GO) run . -repo .. -out results -readme ../README.md

# The long scale rows: 2 to 256 uplinks, up to 1,000,000 routes in main, a storm,
# idle CPU and memory. BENCH_SCALE_FLAGS passes options (see
# `cd bench && go run . -h`), e.g. -scale-config FILE for the extra
# [routing] settings large setups need.
bench-scale: build
	bench/deps.sh
	cd bench && $(GO) run . -repo .. -scale -out results -readme ../README.md $(BENCH_SCALE_FLAGS)

install: build
	install -D -m 0755 $(BIN)/uplinkd $(DESTDIR)$(BINDIR)/uplinkd
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/uplinkd|$(BINDIR)/uplinkd|g' -e 's|/etc/uplinkd/|$(SYSCONFDIR)/uplinkd/|g' \
		contrib/systemd/uplinkd.service > $(DESTDIR)$(UNITDIR)/uplinkd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/uplinkd.service
	install -D -m 0755 -t $(DESTDIR)$(DATADIR)/hooks examples/hooks/syslog examples/hooks/webhook examples/hooks/prefix6-lifetime
	install -D -m 0644 etc/uplinkd.toml $(DESTDIR)$(DATADIR)/uplinkd.toml
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/uplinkd/uplinkd.toml ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/uplinkd/uplinkd.toml (the reference is in $(DATADIR)/uplinkd.toml)"; \
	else \
		install -D -m 0640 etc/uplinkd.toml $(DESTDIR)$(SYSCONFDIR)/uplinkd/uplinkd.toml; \
	fi

clean:
	rm -rf $(BIN)
