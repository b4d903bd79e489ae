# plumb — build, test, e2e, bench, fuzz.
#   make            build/plumb (release, -O2)
#   make test       unit tests under AddressSanitizer + UBSan
#   make e2e        end-to-end tests against the lab (real dockerd, sshd, registry, git)
#   make bench      benchmarks (not part of CI)
#   make fuzz       fuzz the config loader and the observation path (FUZZ_SECONDS in all)
#   make SANITIZE=address,undefined   build everything with sanitizers

CC      ?= cc
PKGS    := libgit2 yaml-0.1 libcurl jansson libssh libcrypto libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lpthread
VERSION := 0.1.0

WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
DEFS    := -D_GNU_SOURCE -DPLUMB_VERSION='"$(VERSION)"'
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(WARN) $(DEFS) -I. $(PKG_CFLAGS) $(CFLAGS)

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
ifdef SANITIZE
ALL_CFLAGS += -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDSAN := -fsanitize=$(SANITIZE)
endif

LIB_SRC  := $(sort $(filter-out reconciler/main.c,$(wildcard state/*.c diff/*.c providers/*.c reconciler/*.c)))
HDRS     := $(wildcard state/*.h diff/*.h providers/*.h reconciler/*.h tests/unit/*.h tests/support/*.h tests/e2e/*.h)
# Test support (the fake fleet): linked into the unit tests and the bench, not into libplumb.a.
SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
E2E_SRC  := $(sort $(wildcard tests/e2e/t_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/b_*.c))

REL := build/rel
SAN := build/san

# The observation script, embedded as bytes (build/gen/, not in git).
GEN_SRC  := build/gen/observe_script.c build/gen/ready_script.c build/gen/snapshot_script.c

LIB_OBJ_REL := $(LIB_SRC:%.c=$(REL)/%.o) $(GEN_SRC:%.c=$(REL)/%.o)
LIB_OBJ_SAN := $(LIB_SRC:%.c=$(SAN)/%.o) $(GEN_SRC:%.c=$(SAN)/%.o)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(SAN)/tests/%)
E2E_BIN     := $(E2E_SRC:tests/e2e/%.c=$(REL)/tests/%)
BENCH_BIN   := $(BENCH_SRC:tests/bench/%.c=$(REL)/tests/%)
SUPPORT_OBJ_REL := $(SUPPORT_SRC:%.c=$(REL)/%.o)
SUPPORT_OBJ_SAN := $(SUPPORT_SRC:%.c=$(SAN)/%.o)
.SECONDARY: $(SUPPORT_OBJ_REL) $(SUPPORT_OBJ_SAN)

.PHONY: all test unit e2e bench fuzz clean check-deps
all: build/plumb

build/plumb: $(REL)/reconciler/main.o $(REL)/libplumb.a
	$(CC) $(LDSAN) -o $@ $^ $(PKG_LIBS)

build/gen/observe_script.c: providers/observe.sh providers/embed.sh
	@mkdir -p $(@D)
	sh providers/embed.sh docker_obs_script providers/observe.sh > $@.tmp && mv $@.tmp $@

# The executor's host-side scripts (reconciler/executor.c): readiness, snapshots.
build/gen/%_script.c: providers/%.sh providers/embed.sh
	@mkdir -p $(@D)
	sh providers/embed.sh prov_$*_script $< > $@.tmp && mv $@.tmp $@

$(REL)/libplumb.a: $(LIB_OBJ_REL)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(REL)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Sanitizer build: the library, the unit tests, and a plumb binary the tests can exec.
$(SAN)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(DEFS) -I. $(PKG_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(SAN)/libplumb.a: $(LIB_OBJ_SAN)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SAN)/plumb: $(SAN)/reconciler/main.o $(SAN)/libplumb.a
	$(CC) -fsanitize=address,undefined -o $@ $^ $(PKG_LIBS)

$(SAN)/tests/%: tests/unit/%.c $(SUPPORT_OBJ_SAN) $(SAN)/libplumb.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(DEFS) -I. $(PKG_CFLAGS) $(SAN_FLAGS) -o $@ $< $(SUPPORT_OBJ_SAN) $(SAN)/libplumb.a $(PKG_LIBS)

$(REL)/tests/t_%: tests/e2e/t_%.c $(REL)/libplumb.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(REL)/libplumb.a $(PKG_LIBS)

# Benchmarks: release build (no sanitizers), linked with the library.
$(REL)/tests/b_%: tests/bench/b_%.c $(SUPPORT_OBJ_REL) $(REL)/libplumb.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(SUPPORT_OBJ_REL) $(REL)/libplumb.a $(PKG_LIBS)

test unit: $(UNIT_BIN) $(SAN)/plumb
	@PLUMB_BIN=$(CURDIR)/$(SAN)/plumb sh tests/run-unit.sh $(UNIT_BIN)

# The e2e load generator (tests/lab/loadgen.c): HTTP GETs through kamal-proxy during a roll.
$(REL)/tests/loadgen: tests/lab/loadgen.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(DEFS) -O2 -g -o $@ $< -lpthread

e2e: build/plumb $(E2E_BIN) $(REL)/tests/loadgen
	@PLUMB_BIN=$(CURDIR)/build/plumb E2E_BIN_DIR=$(CURDIR)/$(REL)/tests sh tests/e2e/run.sh

bench: build/plumb $(E2E_BIN) $(BENCH_BIN)
	@PLUMB_BIN=$(CURDIR)/build/plumb E2E_BIN_DIR=$(CURDIR)/$(REL)/tests sh tests/bench/run.sh

# Fuzzing with libFuzzer (needs clang): the config loader (untrusted mode) and
# a host's observation output → diff → render. FUZZ_SECONDS is split between
# the two targets; both run even when the first finds a crash.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_TARGETS := config obs
FUZZ_FLAGS := $(DEFS) -I. $(PKG_CFLAGS) -g -O1
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o) $(GEN_SRC:%.c=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ) $(HDRS) $(wildcard tests/fuzz/*.h)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@each=$$(( ($(FUZZ_SECONDS) + 1) / 2 )); rc=0; \
	for t in $(FUZZ_TARGETS); do sh tests/fuzz/run.sh $$t $$each || rc=1; done; exit $$rc

clean:
	rm -rf build
