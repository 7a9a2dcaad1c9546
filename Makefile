# aiosfs — the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     := bin/aiosfs
PKGS    := ./...
FUZZTIME ?= 30s

.PHONY: all build run test deps vet bench eval fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/aiosfs

# Runs the daemon on its built-in defaults: FUSE at /aios, state in
# /var/lib/aiosfs, 9P on /var/lib/aiosfs/9p.sock, 1 s sampling.
run: build
	./$(BIN) serve

# Installs what the tests need (Debian's diod for its 9P client tools),
# then vets and runs every test. Root tests mount FUSE and make cgroups.
test: deps vet
	$(GO) test -count=1 -timeout 20m $(PKGS)

deps:
	scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)

# Latency of agents/N/stat through FUSE and 9P against /proc/PID/stat, and
# the daemon's own cost at 200 agents; prints ratios. Then the scheduler's
# cost on one core: one update plus forecast, a whole tick of 1,000 agents,
# a save of their history.
bench: deps build
	$(GO) run ./scripts/bench
	$(GO) test -run '^$$' -bench . -benchtime 2s -cpu 1 ./engines/sched/
	$(GO) test -run '^$$' -bench . -benchtime 1s -cpu 1 ./engines/mem/

# Evaluations against baselines on public data ($(AIOS_DATA), default
# ../shared/datasets) and recorded traces; each part skips, saying why,
# when its data is absent.
AIOS_DATA ?= ../shared/datasets
export AIOS_DATA
eval:
	$(GO) run ./scripts/eval/sched
	$(GO) run ./scripts/eval/mem
	$(GO) run ./scripts/eval/gpu
	$(GO) run ./scripts/threat/eval

# Coverage-guided fuzzing of the parsers, FUZZTIME each.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExec$$' -fuzztime $(FUZZTIME) ./ctl/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime $(FUZZTIME) ./ctl/
	$(GO) test -run '^$$' -fuzz '^FuzzCPUList$$' -fuzztime $(FUZZTIME) ./ctl/
	$(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(FUZZTIME) ./ctl/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./hal/procconn/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./engines/gpu/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAlloc$$' -fuzztime $(FUZZTIME) ./engines/mem/
	$(GO) test -run '^$$' -fuzz '^FuzzAgentState$$' -fuzztime $(FUZZTIME) ./engines/mem/
	$(GO) test -run '^$$' -fuzz '^FuzzParseHorizons$$' -fuzztime $(FUZZTIME) ./engines/sched/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSmaps$$' -fuzztime $(FUZZTIME) ./hal/vm/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePressure$$' -fuzztime $(FUZZTIME) ./hal/vm/
	$(GO) test -run '^$$' -fuzz '^FuzzResident$$' -fuzztime $(FUZZTIME) ./hal/vm/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 20x ./fs/p9fs/

clean:
	rm -rf bin
