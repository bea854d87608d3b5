# uplinkd — see README.md. Every target works from a fresh clone, as root.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin

.PHONY: all build test test-unit lint demo figures clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/uplinkd ./cmd/uplinkd
	$(GO) build -o $(BIN)/labtool ./test/labtool

# The whole suite: unit tests with the race detector, then the privileged
# network-namespace tests (they skip without root unless UPLINKD_REQUIRE_PRIV=1).
test:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# A lab of network namespaces with two simulated ISPs; uplinkd runs in the
# router namespace while uplinks are broken and repaired. Needs root.
demo: build
	$(BIN)/labtool demo --uplinkd $(BIN)/uplinkd

# Failover figures (carrier loss, blackhole, UDP outage) measured in the lab.
figures: build
	UPLINKD_FIGURES=1 $(GO) test -count=1 -v -run 'TestFigures' ./test/

clean:
	rm -rf $(BIN)
