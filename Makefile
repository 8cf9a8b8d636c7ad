# specdec - build, test, run.
#   make            library (static + shared) and bin/specdec
#   make run        generate with the shipped models (../shared/models)
#   make test       build and run every test (tests/run.sh)
#   make deps       install / name the Debian packages the build needs
#   make test-san   the tests under ASan + UBSan (separate build dir)
#   make fuzz       libFuzzer targets (clang), run for FUZZ_SECONDS each
#   make bench      forward-pass benchmark table (bench-forward)
#   make bench-models  the wide benchmark models in bench-models/ (scripts/bench_models.sh)
#   make bench-wide    bench-forward and every method on them (scripts/bench_wide.sh)
# Variables: CC (gcc or clang), BUILD (object dir), SAN=1 (sanitizers), O (opt flags)

CC      ?= cc
BUILD   ?= build
O       ?= -O2
SAN     ?=
FUZZ_SECONDS ?= 60

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  := -std=c11 $(O) -g $(WARN) -D_GNU_SOURCE -fPIC -pthread -Iinclude -Isrc -Itests $(EXTRA_CFLAGS)
LDLIBS  := -pthread -lm
# Tools and tests parse JSON with jansson (Debian libjansson-dev); the library does not.
TOOL_LDLIBS := -ljansson $(LDLIBS)
SERVER_LDLIBS := -lmicrohttpd
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c -mavx2
# VNNI files: their tables are handed out only to CPUs with the extension
AVXVNNI_FLAGS := $(AVX2_FLAGS) -mavxvnni
AVX512VNNI_FLAGS := $(AVX512_FLAGS) -mavx512vnni

# src/: model (GGUF files, weights, heads, quantizer), tokenizer (vocabulary,
# BPE / SentencePiece), compute (contexts, forward pass, threads, machine
# probe), kernels, sampling, speculative (drafters, verification, decoding);
# src/server is the HTTP server, linked into bin/specdec only.
LIB_DIRS := src src/model src/tokenizer src/compute src/kernels src/sampling src/speculative
LIB_SRC  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
# The HTTP server (libmicrohttpd, Debian libmicrohttpd-dev) links into bin/specdec only.
SERVER_SRC := $(sort $(wildcard src/server/*.c))
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# examples/: programs on the public header and the static library alone
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
TEST_UTIL_SRC := $(sort $(wildcard tests/util/*.c))
TEST_UTIL_OBJ := $(TEST_UTIL_SRC:%.c=$(BUILD)/%.o)
HDRS     := $(wildcard include/*.h $(LIB_DIRS:%=%/*.h) tools/*.h tests/util/*.h)

STATIC   := $(BUILD)/libspecdec.a
SHARED   := $(BUILD)/libspecdec.so
BINDIR   ?= bin
BIN      := $(BINDIR)/specdec

.PHONY: all lib deps run test test-san fuzz bench bench-models bench-wide clean
# Keep objects of tests/util between test builds.
.SECONDARY:
all: $(STATIC) $(SHARED) $(BIN)
lib: $(STATIC) $(SHARED)

$(BUILD)/%_avx2.o: %_avx2.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(BUILD)/%_avxvnni.o: %_avxvnni.c $(HDRS) src/kernels/packed_impl.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVXVNNI_FLAGS) -c $< -o $@
$(BUILD)/%_avx512vnni.o: %_avx512vnni.c $(HDRS) src/kernels/packed_impl.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512VNNI_FLAGS) -c $< -o $@
$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The server's own header rebuilds only the server and its command.
$(SERVER_OBJ) $(BUILD)/tools/serve.o: $(wildcard src/server/*.h)

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(SHARED): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN): $(TOOL_OBJ) $(SERVER_OBJ) $(STATIC)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(SERVER_OBJ) $(STATIC) $(TOOL_LDLIBS) $(SERVER_LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) include/specdec.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(O) $(WARN) -Iinclude $(LDFLAGS) $(filter -fsanitize%,$(CFLAGS)) -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL_OBJ) $(STATIC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(TEST_UTIL_OBJ) $(STATIC) $(TOOL_LDLIBS)

# run, test, fuzz and bench-models first make sure the Debian packages they
# need are here (scripts/deps.sh: installs them as root, else names them).
deps:
	@sh scripts/deps.sh build

run:
	@sh scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	./$(BIN) generate -p "static int btrfs_" -n 64 --temp 0
	./$(BIN) generate --spec draft -p "static int btrfs_" -n 64 --temp 0

test:
	@sh scripts/deps.sh test
	@$(MAKE) --no-print-directory all $(TEST_BIN) $(EXAMPLE_BIN)
	BUILD=$(BUILD) BIN=$(BIN) sh tests/run.sh

# Sanitizer runs use a subset of the long end-to-end tests (SD_TEST_QUICK), at
# -O2: 27% faster than -O1 under ASan + UBSan (test_reference, test_quant_models).
test-san:
	SD_TEST_QUICK=1 $(MAKE) BUILD=build-san BINDIR=build-san/bin SAN=1 O=-O2 test

FUZZ_SRC := $(sort $(wildcard tests/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/%.c=build-fuzz/%)
# Each fuzz target links only the sources it exercises (FUZZ_DEPS_<name>).
FUZZ_DEPS_fuzz_gguf := src/model/gguf.c src/model/gguf_write.c src/status.c src/tokenizer/vocab.c \
    src/tokenizer/tokenizer.c src/tokenizer/tokenizer_bpe.c src/tokenizer/unicode_data.c
FUZZ_DEPS_fuzz_vocab_subset := src/tokenizer/vocab_subset.c src/status.c
FUZZ_DEPS_fuzz_request := src/server/request.c src/server/buf.c $(FUZZ_DEPS_fuzz_gguf)
FUZZ_LIBS_fuzz_request := -ljansson -pthread
FUZZ_DEPS_fuzz_tokenizer := $(FUZZ_DEPS_fuzz_gguf)
.SECONDEXPANSION:
build-fuzz/%: tests/%.c $$(FUZZ_DEPS_$$*) $(HDRS)
	@mkdir -p build-fuzz
	clang -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o $@ $< $(FUZZ_DEPS_$*) $(FUZZ_LIBS_$*) -lm
fuzz:
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	sh tests/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

bench: all
	./$(BIN) bench-forward -t 2

bench-models:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	BIN=$(BIN) sh scripts/bench_models.sh bench-models

bench-wide: bench-models
	BIN=$(BIN) sh scripts/bench_wide.sh

clean:
	rm -rf build build-san build-fuzz bin
