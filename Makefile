# Pyramid build. `make demo` runs the whole thing on an embedded broker;
# `make test` runs every test, starting a local ClickHouse when one is installed.
GO        ?= go
BIN       := bin/pyramid
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2

.PHONY: all build test lint fmt bench demo clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/pyramid

test:
	bash scripts/test.sh

lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fmt:
	gofmt -w .

bench:
	bash scripts/bench.sh

demo: build
	./$(BIN) demo

clean:
	rm -rf bin var
