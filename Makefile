# sefl build.  `make deps` installs what the build, tests, benchmarks and demo
# need; `make` builds build/bin/*; `make check` runs every test suite.
#
# Layout rules the build relies on, so adding a module never means editing
# this file:
#   common/**/*.c server/*.c client/*.c -> build/libsefl.a (the modules)
#   {server,client,tests/bench}/sefl-*.c -> build/bin/sefl-*  (one program each)
#   tests/check_*.c                    -> build/tests/check_* (one Check suite each)
#   client/sefl-{client,sim}.c         -> also build/test-bin/* (test builds: with
#                                         the test-only switches of client/testswitch.h)
#   tests/integration/*.sh             -> run by `make check` after the suites
#   tests/fuzz/fuzz_*.c                -> build-fuzz/fuzz_* (libFuzzer, `make fuzz`)

BUILD    ?= build
BIN      := $(BUILD)/bin
OBJ      := $(BUILD)/obj
GEN      := $(BUILD)/proto
LIB      := $(BUILD)/libsefl.a

CC       ?= cc
SAN      ?=
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# Includes name their folder from the repository root ("common/net/conn.h",
# "proto/fl.pb-c.h"), so a crossing between layers is visible in the source
# and tests/layers.sh can check it.
CPPFLAGS += -std=c11 -D_GNU_SOURCE -I. -I$(BUILD) \
            $(shell pkg-config --cflags openblas 2>/dev/null) -MMD -MP
# COVERAGE=1: gcov instrumentation (tests/coverage.sh, `make coverage`).
ifneq ($(COVERAGE),)
CFLAGS   += --coverage
LDFLAGS  += --coverage
endif
ifneq ($(SAN),)
CFLAGS   += -fsanitize=$(SAN) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SAN)
endif

PKGS     := libuv libprotobuf-c sqlite3 zlib inih libmicrohttpd
LDLIBS   := $(shell pkg-config --libs $(PKGS) openblas 2>/dev/null) \
            -lmbedtls -lmbedx509 -lmbedcrypto -lm -lpthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

PROG_SRC := $(wildcard server/sefl-*.c client/sefl-*.c tests/bench/sefl-*.c)
LIB_SRC  := $(filter-out $(PROG_SRC),$(wildcard common/*.c common/*/*.c server/*.c client/*.c))
TEST_SRC := $(wildcard tests/check_*.c)
PROGS    := $(patsubst %.c,$(BIN)/%,$(notdir $(PROG_SRC)))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
LIB_OBJ  := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRC)) $(OBJ)/proto/fl.pb-c.o
# Test builds link this object ahead of the library, so its switches replace
# the release build's empty ones; release programs never contain them.
TEST_SWITCH_OBJ := $(OBJ)/test/client/testswitch.o
TEST_PROGS := $(BUILD)/test-bin/sefl-client $(BUILD)/test-bin/sefl-sim

DEB_PKGS := build-essential pkg-config libuv1-dev libprotobuf-c-dev \
            protobuf-c-compiler libmbedtls-dev libsqlite3-dev check \
            libopenblas-dev zlib1g-dev dataset-fashion-mnist openssl \
            iproute2 sqlite3 clang libclang-rt-14-dev python3 procps lcov \
            protobuf-compiler python3-protobuf \
            libmicrohttpd-dev prometheus curl libinih-dev help2man

# `make install PREFIX=/usr/local DESTDIR=`: the programs of server/ and
# client/ (not the benchmarks) and their man pages, made by help2man from
# their --help and --version, so the pages never disagree with the programs.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   := $(PREFIX)/bin
MANDIR   := $(PREFIX)/share/man/man1
DOCDIR   := $(PREFIX)/share/doc/sefl
INSTALL_PROGS := $(patsubst %.c,%,$(notdir $(wildcard server/sefl-*.c client/sefl-*.c)))
MANPAGES := $(patsubst %,$(BUILD)/man/%.1,$(INSTALL_PROGS))
# The NAME line of each man page (a program without one gets help2man's).
MAN_NAME_sefl-server := federated-learning coordinator
MAN_NAME_sefl-client := federated-learning client
MAN_NAME_sefl-sim    := many simulated federated-learning clients in one process
MAN_NAME_sefl-eval   := per-client personalized accuracy of a run
MAN_NAME_sefl-certs  := certificates for a sefl project

.PHONY: all deps layers check coverage check-asan bench demo results robust arch-results soak r-sweep newcomers \
        fuzz fuzz-corpus clean man install uninstall
all: $(PROGS) $(TEST_PROGS) $(TESTS)

# Installs only what is missing, so a second run is quiet and fast.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# One protoc-c run makes both files (a grouped target), so -j2 never runs it twice.
$(GEN)/fl.pb-c.c $(GEN)/fl.pb-c.h &: proto/fl.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Iproto proto/fl.proto

# Generated code is not ours to keep warning-clean with -Wextra.
$(OBJ)/proto/fl.pb-c.o: $(GEN)/fl.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -I$(GEN) $(CFLAGS) -w -c -o $@ $<

$(OBJ)/%.o: %.c | $(GEN)/fl.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(TEST_SWITCH_OBJ): client/testswitch.c | $(GEN)/fl.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DSEFL_TEST_SWITCHES $(CFLAGS) $(WARN) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

define prog_rule
$(BIN)/$(basename $(notdir $(1))): $(OBJ)/$(1:.c=.o) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROG_SRC),$(eval $(call prog_rule,$(p))))

$(BUILD)/test-bin/%: $(OBJ)/client/%.o $(TEST_SWITCH_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Suites run the real sefl-certs (check_main.h's check_certs): it is built first.
$(BUILD)/tests/%: $(OBJ)/tests/%.o $(TEST_SWITCH_OBJ) $(LIB) | $(BIN)/sefl-certs
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

# check_fault fails chosen allocations through the linker's --wrap, which
# reaches only the objects being linked: zlib is linked statically there so
# that its allocations are among them (see the suite's opening comment).
$(BUILD)/tests/check_fault: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
$(BUILD)/tests/check_fault: LDLIBS := $(patsubst -lz,-l:libz.a,$(LDLIBS))

# Each suite prints Check's summary line; integration scripts print
# "N passed, N failed" (or say plainly why they skipped).
# `make check` is one of the README's two commands, so on a fresh machine it
# installs what is missing first (deps is quiet when everything is there),
# then builds, in that order even under -j.
check:
	@$(MAKE) -s --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@fail=0; \
	echo "== tests/layers.sh"; bash tests/layers.sh || fail=1; \
	for t in $(TESTS); do echo "== $$t"; BUILD=$(BUILD) $$t || fail=1; done; \
	for s in $(sort $(wildcard tests/integration/*.sh)); do \
	  echo "== $$s"; BUILD=$(BUILD) bash $$s || fail=1; done; \
	if [ $$fail = 0 ]; then echo "make check: all suites passed"; else echo "make check: FAILED"; exit 1; fi

# Fails when a file includes a layer it may not (tests/layers.sh says which).
layers:
	@bash tests/layers.sh

# The same suites under AddressSanitizer with leak checking (a leak fails
# the test that leaked: Check runs each test in a child that LSan checks at
# exit) and UBSan, where any finding stops the test (no recovery).
check-asan:
	$(MAKE) BUILD=build-asan SAN=address,undefined OPT=-O1 check

# Line coverage per folder over the whole of make check (gcov + lcov), in build-cov.
coverage:
	@bash tests/coverage.sh

bench: all
	@bash tests/bench/bench.sh

demo:
	@bash tests/demo.sh

results: all
	@bash tests/results.sh

# The robustness table (aggregation rules under attack, DP, strategy memory):
# long, see tests/bench/robust.sh for ROUNDS, MAX_SAMPLES and the rest.
robust: all
	@bash tests/bench/robust.sh

# Chaos run (issue 10): 20 clients, 200 rounds, shards killed, stalled and
# cut off, the coordinator kill -9'd ten times, two attackers; asserts a
# clean record and prints the figures. About 5-10 minutes; not in check.
soak: all
	@bash tests/soak.sh

# Issue 14's personalization experiments (tests/bench/*.sh say what they
# run and how to size them); minutes each, not part of make check.
r-sweep: all
	@bash tests/bench/r_sweep.sh

newcomers: all
	@bash tests/bench/newcomers.sh

# One results row per model architecture (tests/bench/arch_results.sh).
arch-results: all
	@bash tests/bench/arch_results.sh

FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
# UB aborts (no recover) so that libFuzzer counts it as a crash.
build-fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(GEN)/fl.pb-c.c $(wildcard common/*.h common/*/*.h server/*.h client/*.h)
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -I. -I$(BUILD) -I$(GEN) $(shell pkg-config --cflags openblas 2>/dev/null) \
	  -o $@ $< $(LIB_SRC) $(GEN)/fl.pb-c.c $(LDLIBS)
# Each target runs FUZZ_SECONDS on its committed seeds plus the corpus it grew
# before; the full log is build-fuzz/<target>.log, crash inputs are
# build-fuzz/<target>-crash-*. Fails when any target found something.
fuzz: $(FUZZ_BIN)
	@fail=0; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/$$n- \
	    build-fuzz/corpus-$$n tests/fuzz/corpus/$$n > build-fuzz/$$n.log 2>&1 || fail=1; \
	  grep -E 'DONE|stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Test unit written|Done' build-fuzz/$$n.log; \
	  done; exit $$fail

# Remakes the committed seed corpus (tests/fuzz/corpus/) from gen_corpus.c.
fuzz-corpus: $(BUILD)/fuzz/gen_corpus
	$(BUILD)/fuzz/gen_corpus tests/fuzz/corpus
$(BUILD)/fuzz/gen_corpus: $(OBJ)/tests/fuzz/gen_corpus.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

man: $(MANPAGES)

$(BUILD)/man/%.1: $(BIN)/% common/version.h
	@mkdir -p $(@D)
	help2man --no-info --no-discard-stderr $(if $(MAN_NAME_$*),--name='$(MAN_NAME_$*)') \
	  --output=$@ ./$<

install: $(addprefix $(BIN)/,$(INSTALL_PROGS)) $(MANPAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(addprefix $(BIN)/,$(INSTALL_PROGS)) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/
	install -m 0644 LICENSE README.md $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_PROGS)) \
	  $(addprefix $(DESTDIR)$(MANDIR)/,$(addsuffix .1,$(INSTALL_PROGS)))
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build build-asan build-fuzz build-cov

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
