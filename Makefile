# zimage - plain GNU Makefile (see docs/ARCHITECTURE.md for why not CMake).
#
#   make            library (static + shared), CLI, tests, tools, benchmarks -> build/
#   make test       golden runner on tests/fixtures (+ its own rule tests) + unit tests + CLI + server
#                   (test-server, test-browser)
#   make test-tsan  the concurrency test under ThreadSanitizer -> build-tsan/
#   make test-san   the same suite built with -fsanitize=address,undefined,float-cast-overflow -> build-san/
#   make demo       generate a PNG with the tiny fixture model
#   make install    PREFIX=/usr/local: lib, header, zimage.pc, CLI
#
# Every .c under src/ goes into the library, except src/cli/ (the CLI program) and
# src/server/ (`zimage serve`, linked into the CLI only: the library never needs libmicrohttpd).

SAN ?= 0
FUZZ ?= 0
ifeq ($(SAN),thread)
# ThreadSanitizer build for `make test-tsan`
BUILD ?= build-tsan
SANFLAGS = -fsanitize=thread
OPT = -O1 -g -fno-omit-frame-pointer $(SANFLAGS)
else ifeq ($(FUZZ),1)
# libFuzzer targets (scripts/fuzz.sh): clang, coverage instrumentation + ASan/UBSan
BUILD ?= build-fuzz
CC = clang
SANFLAGS = -fsanitize=address,undefined,float-cast-overflow
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(SANFLAGS) -fno-sanitize-recover=all
else ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined,float-cast-overflow
OPT = -O1 -g -fno-omit-frame-pointer $(SANFLAGS) -fno-sanitize-recover=all
else
BUILD ?= build
OPT = -O3 -g
endif

CC ?= cc
# No -march=native: one binary runs on any x86-64 and picks its kernels at run time
# (src/kernels/cpu.c). Only the per-ISA kernel files get ISA flags (below).
ARCH ?=
CFLAGS ?= $(OPT) $(ARCH) -std=c11 -D_GNU_SOURCE -Wall -Wextra -fopenmp -fPIC -fvisibility=hidden -MMD -MP
UNAME_M := $(shell uname -m)
ifeq ($(UNAME_M),x86_64)
ISA_avx2 = -mavx2 -mfma -mf16c
ISA_avx512 = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
ISA_avx512bf16 = $(ISA_avx512) -mavx512bf16
ISA_avx512vnni = $(ISA_avx512) -mavx512vnni
ISA_avx2u = $(ISA_avx2)
ISA_avx2s = $(ISA_avx2)
ISA_amx = $(ISA_avx512) -mavx512bf16 -mamx-tile -mamx-bf16 -mamx-int8
endif
# flags of one source file: the ISA named by its suffix (gemm_avx2.c -> ISA_avx2)
isa_flags = $(ISA_$(lastword $(subst _, ,$(basename $(notdir $(1))))))
PKGS = jansson libpng zlib libutf8proc libpcre2-8 libjpeg
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lpng -lz -lutf8proc -lpcre2-8 -ljpeg)
CPPFLAGS += -Iinclude $(PKG_CFLAGS)
LDLIBS = $(PKG_LIBS) -lm -lpthread
LDFLAGS += -fopenmp $(SANFLAGS)

LIB_SRC := $(shell find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/server/*' | sort)
CLI_SRC := $(shell find src/cli src/server -name '*.c' | sort)
SERVER_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
GOLDEN_SRC := $(wildcard tests/golden/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
THREAD_SRC := tests/thread/thread_test.c
TOOL_SRC := $(wildcard tools/*.c)
BENCH_SRC := $(wildcard bench/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
GOLDEN_OBJ := $(GOLDEN_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
TOOLS := $(TOOL_SRC:tools/%.c=$(BUILD)/%)
BENCHES := $(BENCH_SRC:bench/%.c=$(BUILD)/%)
FUZZERS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)

# ABI version: libzimage.so.$(SOMAJOR) is the SONAME; bump SOMAJOR on any incompatible change.
VERSION := $(shell sed -n 's/^\#define ZIMAGE_VERSION "\(.*\)"/\1/p' include/zimage.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
STATIC := $(BUILD)/libzimage.a
SHARED := $(BUILD)/libzimage.so
SHARED_REAL := $(BUILD)/libzimage.so.$(VERSION)

all: $(STATIC) $(SHARED) $(BUILD)/zimage $(BUILD)/zimage-golden $(BUILD)/zimage-unit $(BUILD)/zimage-thread-test \
     $(TOOLS) $(BENCHES)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(call isa_flags,$<) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHARED_REAL): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libzimage.so.$(SOMAJOR) -o $@ $^ $(LDLIBS)

$(SHARED): $(SHARED_REAL)
	ln -sf libzimage.so.$(VERSION) $(BUILD)/libzimage.so.$(SOMAJOR)
	ln -sf libzimage.so.$(SOMAJOR) $@

$(BUILD)/zimage: $(CLI_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(SERVER_LIBS) $(LDLIBS)

$(BUILD)/src/server/page.o: src/server/page.html

$(BUILD)/zimage-server-unit: $(BUILD)/tests/server/server_unit.o $(BUILD)/src/server/base64.o $(BUILD)/src/server/request.o \
                             $(BUILD)/src/server/jobs.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/zimage-golden: $(GOLDEN_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/example-generate: $(BUILD)/examples/generate.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/zimage-unit: $(UNIT_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/zimage-thread-test: $(THREAD_SRC:%.c=$(BUILD)/%.o) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/tools/%.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/bench/%.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the static library last: extra objects (fuzz_request's server files) need it too
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(STATIC)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $(filter-out $(STATIC),$^) $(STATIC) $(LDLIBS)

# the server's request parser and base64 are not in the library
$(BUILD)/fuzz_request: $(BUILD)/src/server/request.o $(BUILD)/src/server/base64.o

# build with FUZZ=1 (scripts/fuzz.sh does)
fuzzers: $(FUZZERS)

FIXTURES ?= tests/fixtures

test: all $(BUILD)/example-generate
	$(BUILD)/zimage-unit $(FIXTURES)
	$(BUILD)/zimage-golden $(FIXTURES)
	$(BUILD)/zimage-golden --precision bf16 $(FIXTURES)
	$(BUILD)/zimage-golden --precision int8 $(FIXTURES)
	@echo "golden-bf16 on the portable path (emulated vdpbf16ps GEMM and attention):"
	ZIMAGE_ISA=c $(BUILD)/zimage-golden --precision bf16 $(FIXTURES) > $(BUILD)/golden-bf16-c.log || { cat $(BUILD)/golden-bf16-c.log; exit 1; }
	tail -1 $(BUILD)/golden-bf16-c.log
	python3 tests/golden/runner_test.py $(BUILD)/zimage-golden $(FIXTURES)
	$(BUILD)/zimage-thread-test $(FIXTURES)
	bash tests/cli_test.sh $(BUILD)/zimage $(FIXTURES)
	cd $(BUILD) && ./example-generate $(abspath $(FIXTURES))/tiny-zimage && test -s fox.png && echo 'example: 1 passed, 0 failed'
	CC="$(CC) $(SANFLAGS)" bash tests/abi_test.sh $(BUILD) $(FIXTURES)
	$(MAKE) --no-print-directory test-server
	$(MAKE) --no-print-directory test-browser

# `zimage serve` over loopback (tests/server_test.py), and its web page in headless Chromium
# (fails, never skips, when chromium/chromium-driver/python3-selenium are missing).
test-server: $(BUILD)/zimage $(BUILD)/zimage-server-unit
	$(BUILD)/zimage-server-unit
	/usr/bin/python3 tests/server_test.py $(BUILD)/zimage $(FIXTURES) $(if $(filter 1,$(SAN)),--san)

test-browser: $(BUILD)/zimage
	/usr/bin/python3 tests/server_browser_test.py $(BUILD)/zimage $(FIXTURES) $(BUILD)/serve-screenshot.png

test-san:
	$(MAKE) SAN=1 test

# the concurrency test under ThreadSanitizer (1 kernel thread per call: libgomp is not instrumented)
# 1 kernel thread per call: libgomp is not built with ThreadSanitizer, so its fork/join is
# invisible to TSan and every OpenMP region would be reported; the calls' own threads are checked.
test-tsan:
	$(MAKE) SAN=thread build-tsan/zimage-thread-test
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/zimage-thread-test $(FIXTURES) 1

# make install PREFIX=/usr/local [DESTDIR=...]: library (static + versioned shared),
# header, pkg-config file and the CLI
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
install: $(STATIC) $(SHARED) $(BUILD)/zimage
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf libzimage.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libzimage.so.$(SOMAJOR)
	ln -sf libzimage.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libzimage.so
	install -m 644 include/zimage.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/zimage $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES@|$(PKGS)|' zimage.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/zimage.pc

demo: all
	$(BUILD)/zimage -m tests/fixtures/tiny-zimage -p "a red fox in the snow" -W 64 -H 64 --seed 42 -o fox.png

clean:
	rm -rf build build-san build-fuzz build-tsan

.PHONY: all test test-san test-tsan demo clean fuzzers install test-server test-browser
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
