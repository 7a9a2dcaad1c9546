# aiosfs — the two set-up commands are `make run` and `make test`;
# `sudo make install && sudo systemctl enable --now aiosfs` makes it a service.
GO      ?= go
BIN     := bin/aiosfs
PKGS    := ./...
FUZZTIME ?= 30s

# make run: where the daemon mounts the tree and keeps its state, its
# cgroup prefix, and any other `aiosfs serve` flags, e.g.
#   make run MOUNT=/tmp/aios STATE=/tmp/aios-state CGROUP_PREFIX=try ARGS='-metrics-listen 127.0.0.1:9464'
MOUNT         ?= /aios
STATE         ?= /var/lib/aiosfs
CGROUP_PREFIX ?= aiosfs
ARGS          ?=

# make install / uninstall: the usual GNU variables; DESTDIR stages into
# another root (packaging, tests). The unit goes where systemd looks for
# local units; the defaults file is /etc/default/aiosfs whatever PREFIX is.
DESTDIR    ?=
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DOCDIR     ?= $(PREFIX)/share/doc/aiosfs
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc

.PHONY: all build run install uninstall test deps vet bench eval demo fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/aiosfs

# The binary as a file: install rebuilds it only when a source is newer, so
# `make build && sudo make install` needs no Go toolchain in root's PATH.
GOSRC := $(shell find . -name '*.go' -not -path './.git/*' 2>/dev/null) go.mod go.sum
$(BIN): $(GOSRC)
	$(GO) build -o $(BIN) ./cmd/aiosfs

# Runs the daemon in the foreground (Ctrl-C stops it and its agents); by
# default on its built-in defaults: FUSE at /aios, state in
# /var/lib/aiosfs, 9P on /var/lib/aiosfs/9p.sock, 1 s sampling.
run: build
	./$(BIN) serve -mount '$(MOUNT)' -state '$(STATE)' -cgroup-prefix '$(CGROUP_PREFIX)' $(ARGS)

# The binary, the systemd unit (deploy/aiosfs.service with the paths filled
# in), the service's settings (deploy/aiosfs.default, only if there are
# none: an edited file is kept) and the documentation. Does not start,
# enable or reload anything.
install: $(BIN)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(SYSCONFDIR)/default' '$(DESTDIR)$(DOCDIR)/docs/img'
	install -m 0755 $(BIN) '$(DESTDIR)$(BINDIR)/aiosfs'
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/aiosfs.service > '$(DESTDIR)$(UNITDIR)/aiosfs.service.tmp'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/aiosfs.service.tmp'
	mv '$(DESTDIR)$(UNITDIR)/aiosfs.service.tmp' '$(DESTDIR)$(UNITDIR)/aiosfs.service'
	[ -e '$(DESTDIR)$(SYSCONFDIR)/default/aiosfs' ] || install -m 0644 deploy/aiosfs.default '$(DESTDIR)$(SYSCONFDIR)/default/aiosfs'
	install -m 0644 README.md '$(DESTDIR)$(DOCDIR)/README.md'
	install -m 0644 docs/*.md '$(DESTDIR)$(DOCDIR)/docs/'
	install -m 0644 docs/img/*.png '$(DESTDIR)$(DOCDIR)/docs/img/'
	@if [ -z '$(DESTDIR)' ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
		echo 'installed; start it with: systemctl enable --now aiosfs'; \
	fi

# Removes what install put in place, except an edited settings file and
# the state directory (/var/lib/aiosfs: its store and agents' output). Stop
# the service first: systemctl disable --now aiosfs.
uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/aiosfs' '$(DESTDIR)$(UNITDIR)/aiosfs.service'
	rm -rf '$(DESTDIR)$(DOCDIR)'
	if cmp -s deploy/aiosfs.default '$(DESTDIR)$(SYSCONFDIR)/default/aiosfs'; then rm -f '$(DESTDIR)$(SYSCONFDIR)/default/aiosfs'; \
	elif [ -e '$(DESTDIR)$(SYSCONFDIR)/default/aiosfs' ]; then echo 'kept $(DESTDIR)$(SYSCONFDIR)/default/aiosfs (edited)'; fi
	@if [ -z '$(DESTDIR)' ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

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
# a save of their history; the memory manager's policies; the threat
# engine's cost to score one agent's window (BenchmarkObserveWindow). Then
# the syscall capture's cost on a loop of one-byte reads, capture off and
# on (docs/syscall.md §5; root).
bench: deps build
	$(GO) run ./scripts/bench
	$(GO) run ./scripts/bench/syscap
	$(GO) test -run '^$$' -bench . -benchtime 2s -cpu 1 ./engines/sched/
	$(GO) test -run '^$$' -bench . -benchtime 1s -cpu 1 ./engines/mem/
	$(GO) test -run '^$$' -bench . -benchtime 1s -cpu 1 ./engines/threat/

# Evaluations against baselines on public data ($(AIOS_DATA), default
# ../shared/datasets) and recorded traces; each part skips, saying why,
# when its data is absent, and the live recovery evaluation
# (scripts/heal/recover: a daemon and real faults, about 2 minutes) when
# not run as root. The tables go to stdout; the figures (PNG: forecasts
# with their quantile bands, the allocators' slack/shortfall frontiers,
# the cache policies' miss-ratio curves) into $(EVAL_OUT).
AIOS_DATA ?= ../shared/datasets
export AIOS_DATA
EVAL_OUT ?= eval-out
eval:
	$(GO) run ./scripts/eval/sched -plots '$(EVAL_OUT)'
	$(GO) run ./scripts/eval/mem -plots '$(EVAL_OUT)'
	$(GO) run ./scripts/eval/gpu
	$(GO) run ./scripts/threat/eval
	$(GO) run ./scripts/heal/eval
	$(GO) run ./scripts/heal/eval -data testdata/heal/runs-slow.csv
	$(GO) run ./scripts/heal/recover
	$(GO) run ./scripts/eval/syscall

# A one-minute unattended tour, as root: a daemon of its own on a temporary
# mount and state directory (its own cgroup prefix, mock GPUs), steady,
# periodic, growing and misbehaving agents, enforcement on, and where to
# look as each engine acts; then it stops the daemon and checks that no
# agent, cgroup or mount is left. DEMO_ARGS, e.g. -duration 90s.
DEMO_ARGS ?=
demo: build
	$(GO) run ./scripts/demo -aiosfs $(BIN) $(DEMO_ARGS)

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
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./engines/ml/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicy$$' -fuzztime $(FUZZTIME) ./engines/threat/
	$(GO) test -run '^$$' -fuzz '^FuzzParseCmd$$' -fuzztime $(FUZZTIME) ./engines/heal/
	$(GO) test -run '^$$' -fuzz '^FuzzServe$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 20x ./fs/p9fs/

clean:
	rm -rf bin
