# baton — build, test, run, bench.
#
#   make            build everything into bin/
#   make run        build and run batond in the foreground on etc/baton.ini
#   make test       build and run unit + integration tests
#   make test SANITIZE=1   the same under ASan+UBSan (binaries in bin/san/)
#   make bench      throughput: baton-http direct vs through batond
#   make clean
#
# Missing Debian packages are installed with apt-get when running as root;
# otherwise the exact apt-get line is printed.

SANITIZE ?=
CC ?= cc
PKGS := libevent inih
DEB_BUILD := libevent-dev libinih-dev libcmocka-dev pkg-config
DEB_TEST := curl wrk socat python3 iproute2

ifeq ($(SANITIZE),1)
B := bin/san
O := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B := bin
O := build/obj
SANFLAGS :=
endif

# Truncating error text to its buffer is deliberate, so that warning is off.
WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-format-truncation
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Icommon -Iworker -Isupervisor \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS_EV := $(or $(shell pkg-config --libs libevent 2>/dev/null),-levent)
LDLIBS_INI := $(or $(shell pkg-config --libs inih 2>/dev/null),-linih)
LDLIBS_CMOCKA := $(or $(shell pkg-config --libs cmocka 2>/dev/null),-lcmocka)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

COMMON_SRC := $(wildcard common/*.c)
SUP_SRC := $(filter-out supervisor/batonctl.c supervisor/main.c,$(wildcard supervisor/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(O)/%.o)
SUP_OBJ := $(SUP_SRC:%.c=$(O)/%.o)
LIBBATON := $(O)/libbaton.a
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)

PROGS := $(B)/batond $(B)/baton-http $(B)/baton-echo $(if $(wildcard supervisor/batonctl.c),$(B)/batonctl)

.PHONY: all run test unit integration bench clean deps deps-test
all: deps $(PROGS)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(O)/libcommon.a: $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(LIBBATON): $(O)/worker/baton.o $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(B)/batond: $(O)/supervisor/main.o $(SUP_OBJ) $(O)/libcommon.a
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV) $(LDLIBS_INI)

$(B)/batonctl: $(O)/supervisor/batonctl.o $(O)/libcommon.a
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_INI)

$(B)/baton-http: $(O)/worker/http.o $(LIBBATON)
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV)

$(B)/baton-echo: $(O)/worker/echo.o $(LIBBATON)
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV)

# Unit tests link everything but main(), so any module can be tested.
$(O)/tests/%: $(O)/tests/unit/%.o $(O)/tests/unit/stub_batond.o $(SUP_OBJ) $(LIBBATON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_CMOCKA) $(LDLIBS_EV) $(LDLIBS_INI)

unit: deps $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

integration: all deps-test
	BATON_BIN=$(CURDIR)/$(B) python3 tests/integration/run.py

test: unit integration

run: all
	@mkdir -p run
	$(B)/batond -c etc/baton.ini

bench: all deps-test
	BATON_BIN=$(CURDIR)/$(B) python3 tests/bench/bench.py

clean:
	rm -rf bin build

# Debian packages: install when root, otherwise say exactly what to run.
deps:
	@$(call need_pkgs,$(DEB_BUILD),pkg-config --exists $(PKGS) cmocka)
deps-test:
	@$(call need_pkgs,$(DEB_TEST),command -v curl && command -v wrk && command -v socat && command -v python3 && command -v ss)

define need_pkgs
if ! { $(2); } >/dev/null 2>&1; then \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing missing Debian packages: $(1)"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null || \
		  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) >/dev/null; }; } || exit 1; \
	else \
		echo "missing packages; run as root: apt-get install -y $(1)"; exit 1; \
	fi; \
fi
endef

-include $(shell find $(O) -name '*.d' 2>/dev/null)
