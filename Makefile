# Makefile - shunt. `make` builds build/shunt, `make check` runs every test, `make demo`
# shows pairing on loopback. Missing Debian packages are installed by scripts/deps.sh.

CC       ?= cc
PKGS     := libuv sqlite3 jansson libpcre2-8 lua5.4 openssl
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc $(PKG_CFLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS     := -lpthread

BUILD    ?= build
LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/schema.o
CLI_OBJ  := $(BUILD)/obj/src/cli/main.o
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
# The parts the fuzzers and parser benchmarks need: core and http, nothing with I/O.
PURE_SRC := $(wildcard src/core/*.c src/http/*.c)

.PHONY: all deps check demo demo-pairing fuzz bench clean unit asan format FORCE
.DELETE_ON_ERROR:

all: deps
	@$(MAKE) --no-print-directory $(BUILD)/shunt

deps:
	@scripts/deps.sh build

$(BUILD)/shunt: $(CLI_OBJ) $(BUILD)/libshunt.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) $(LIBS)

$(BUILD)/libshunt.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The capture schema, embedded as a C string (STYLE 10: generated, never committed).
$(BUILD)/gen/schema.c: src/capture/schema.sql
	@mkdir -p $(dir $@)
	{ echo '/* generated from src/capture/schema.sql */'; \
	  echo 'const char shunt_capture_schema_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(BUILD)/obj/gen/schema.o: $(BUILD)/gen/schema.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libshunt.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libshunt.a $(PKG_LIBS) -lcmocka $(LIBS)

unit: $(UNIT_BIN)

# libFuzzer drivers: clang, with ASan and UBSan; only core/ and http/ are linked in.
$(BUILD)/fuzz/%: fuzz/%.c $(PURE_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $< $(PURE_SRC)

# The HAR importer's driver also needs SQLite, jansson and the schema. It includes
# har_import.c (to compare the streamed import with the whole tree's), so does not compile it.
$(BUILD)/fuzz/fuzz_har: fuzz/fuzz_har.c src/capture/har_import.c src/capture/db.c \
    $(BUILD)/gen/schema.c $(PURE_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ \
	    $(filter-out src/capture/har_import.c,$(filter %.c,$^)) $(PKG_CFLAGS) -lsqlite3 -ljansson

# The analysis' driver (the importer, the model, every check, diagnose and diff) and the
# capture readers' (every view, the HAR export, the analysis) link the same sources: those,
# the filter and expression code the model uses, SQLite, jansson and PCRE2.
ANALYZE_FUZZ_SRC := $(wildcard src/analyze/*.c) src/capture/har_import.c \
    src/capture/har_export.c src/capture/db.c src/capture/filter.c src/capture/view.c \
    src/rules/expr.c $(BUILD)/gen/schema.c $(PURE_SRC)
$(BUILD)/fuzz/fuzz_analyze $(BUILD)/fuzz/fuzz_capture: $(BUILD)/fuzz/%: fuzz/%.c $(ANALYZE_FUZZ_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $(filter %.c,$^) $(PKG_CFLAGS) -lsqlite3 \
	    -ljansson -lpcre2-8

# The TLS engine's driver (the server side, fed what a client sends) needs the CA and OpenSSL.
$(BUILD)/fuzz/fuzz_tls: fuzz/fuzz_tls.c src/net/tls.c src/net/ca.c $(PURE_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $(filter %.c,$^) -lssl -lcrypto -lpthread

# The filter expressions' driver also needs PCRE2.
$(BUILD)/fuzz/fuzz_expr: fuzz/fuzz_expr.c src/rules/expr.c $(PURE_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $(filter %.c,$^) $(PKG_CFLAGS) -lpcre2-8

# The counted Lua patterns' driver runs them beside Lua's own string library.
$(BUILD)/fuzz/fuzz_luapat: fuzz/fuzz_luapat.c src/rules/luapat.c
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $(filter %.c,$^) $(PKG_CFLAGS) -llua5.4

# The proxy's driver runs the whole program (`shunt proxy` in a thread, played against by the
# driver as client and origin): every area, built once more with clang's instrumentation into
# build-fuzz/ (objects kept, so a change rebuilds only what it touched).
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
ifneq ($(BUILD),build-fuzz)
build-fuzz/libshunt.a: FORCE
	@CC=clang $(MAKE) --no-print-directory BUILD=build-fuzz CFLAGS="$(FUZZ_CFLAGS)" $@
endif

$(BUILD)/fuzz/fuzz_proxy: fuzz/fuzz_proxy.c build-fuzz/libshunt.a
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $^ $(PKG_LIBS) -lpthread

FUZZ_SECONDS ?= 600
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict $(BUILD)/fuzz/corpus-$$n \
	      fuzz/corpus/$${n#fuzz_} || exit 1; done

# Everything: unit tests (plain and ASan/UBSan), integration tests (release and ASan/UBSan
# builds, and the threaded parts under ThreadSanitizer with two workers), a fuzz run.
# The builds of make check use every core (four builds of the whole tree, and the fuzzers).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check:
	@scripts/deps.sh check
	@$(MAKE) -j$(JOBS) --no-print-directory $(BUILD)/shunt unit
	@$(MAKE) -j$(JOBS) --no-print-directory BUILD=build-asan \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    build-asan/shunt unit
	@$(MAKE) -j$(JOBS) --no-print-directory BUILD=build-tsan \
	    CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" build-tsan/shunt
	@CC=clang $(MAKE) -j$(JOBS) --no-print-directory $(FUZZ_BIN)
	@[ -d node_modules ] || if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
	    else npm install --no-audit --no-fund; fi
	@tests/run

# The story, end to end on loopback (`shunt lab demo`); the pairing walk-through with curl
# and nginx is `make demo-pairing`.
demo: all
	@$(BUILD)/shunt lab demo

demo-pairing: all
	@scripts/deps.sh demo
	@scripts/demo.sh

bench: all
	@scripts/deps.sh bench
	@bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
