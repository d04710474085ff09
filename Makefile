# baton — build, test, run, bench.
#
#   make            build everything into bin/
#   make run        build and run batond in the foreground on etc/baton.ini
#   make test       build and run unit + integration tests
#   make test SANITIZE=1   the same under ASan+UBSan (binaries in bin/san/)
#   make bench      throughput: baton-http direct vs through batond; reexec's window
#   make bench-c100k   batond while its workers hold BENCH_C100K (default 100000)
#                   idle keep-alive connections: RSS, fds, new connections/s
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each (default 20)
#   make fuzz-replay   the committed fuzz corpus, with the normal compiler
#   make install    PREFIX=/usr/local DESTDIR= : binaries, libbaton (+ header,
#                   pkg-config file), man pages, example config, systemd units
#   make uninstall  the same files, removed
#   make clean
#
# Missing Debian packages are installed with apt-get when running as root;
# otherwise the exact apt-get line is printed.

SANITIZE ?=
CC ?= cc
PKGS := libevent inih
DEB_BUILD := libevent-dev libinih-dev libcmocka-dev pkg-config
DEB_TEST := curl wrk apache2-utils socat python3 iproute2 valgrind groff-base golang-go tmux strace
DEB_FUZZ := clang

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
# batond's closer thread (supervisor/closer.c)
LDLIBS_THREAD := -pthread
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

COMMON_SRC := $(wildcard common/*.c)
# batonctl's own files (supervisor/README.md marks them); batond has the rest.
CTL_SRC := supervisor/batonctl.c supervisor/client.c supervisor/top.c
SUP_SRC := $(filter-out $(CTL_SRC) supervisor/main.c,$(wildcard supervisor/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(O)/%.o)
SUP_OBJ := $(SUP_SRC:%.c=$(O)/%.o)
LIBBATON := $(O)/libbaton.a
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)

PROGS := $(B)/batond $(B)/baton-http $(B)/baton-echo $(if $(wildcard supervisor/batonctl.c),$(B)/batonctl)

# The goals a person types first install the Debian packages that are
# missing, then run again in a sub-make (do-GOAL) whose pkg-config flags
# are worked out only then: a fresh machine builds with any -j.
TOP_GOALS := all run test unit integration layers bench bench-c100k fuzz fuzz-replay install
deps_for = deps $(if $(filter test integration bench bench-c100k,$(1)),deps-test) $(if $(filter fuzz,$(1)),deps-fuzz)
.PHONY: $(TOP_GOALS) $(TOP_GOALS:%=do-%) clean deps deps-test deps-fuzz
$(TOP_GOALS):
	@$(MAKE) --no-print-directory $(call deps_for,$@)
	@$(MAKE) --no-print-directory do-$@

do-all: $(PROGS)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(O)/libcommon.a: $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(LIBBATON): $(O)/worker/baton.o $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(B)/batond: $(O)/supervisor/main.o $(SUP_OBJ) $(O)/libcommon.a
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV) $(LDLIBS_INI) $(LDLIBS_THREAD)

$(B)/batonctl: $(CTL_SRC:%.c=$(O)/%.o) $(O)/libcommon.a
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_INI)

$(B)/baton-http: $(O)/worker/http.o $(LIBBATON)
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV)

$(B)/baton-echo: $(O)/worker/echo.o $(LIBBATON)
	@mkdir -p $(B)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV)

# Unit tests link everything but main(), so any module can be tested.
$(O)/tests/%: $(O)/tests/unit/%.o $(SUP_OBJ) $(LIBBATON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_CMOCKA) $(LDLIBS_EV) $(LDLIBS_INI) $(LDLIBS_THREAD)


# Two more builds of batond for the reexec tests: another version string,
# and one that reads only an incompatible state version (state.h).
BATOND_SRC := supervisor/main.c $(SUP_SRC) $(COMMON_SRC)
TEST_BATOND := $(B)/test/batond-next $(B)/test/batond-state99
$(O)/next/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) '-DBATON_VERSION="0.1.0+next"' -MMD -MP -c $< -o $@
$(O)/state99/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) '-DBATON_VERSION="0.1.0+state99"' -DBATON_STATE_VERSION=99 -MMD -MP -c $< -o $@
$(B)/test/batond-next: $(BATOND_SRC:%.c=$(O)/next/%.o)
$(B)/test/batond-state99: $(BATOND_SRC:%.c=$(O)/state99/%.o)
$(TEST_BATOND):
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_EV) $(LDLIBS_INI) $(LDLIBS_THREAD)

do-unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

do-integration: do-all $(TEST_BATOND)
	BATON_BIN=$(CURDIR)/$(B) python3 tests/integration/run.py

# batond's floors (supervisor/README.md): no call up, no cycle but the
# engine's pool.c <-> dispatch.c, no file over 800 lines.
do-layers: $(O)/supervisor/main.o $(SUP_OBJ) $(CTL_SRC:%.c=$(O)/%.o)
	python3 tests/layers.py $(O)/supervisor supervisor/README.md

# The committed fuzz corpus is replayed on every test run (a second); the
# integration tests run last, so their summary is the last line.
do-test: do-all $(TEST_BATOND) do-layers do-unit do-fuzz-replay
	BATON_BIN=$(CURDIR)/$(B) python3 tests/integration/run.py

do-run: do-all
	@mkdir -p run
	$(B)/batond -c etc/baton.ini

do-bench: do-all $(TEST_BATOND)
	BATON_BIN=$(CURDIR)/$(B) python3 tests/bench/bench.py
	BATON_BIN=$(CURDIR)/$(B) python3 tests/bench/reexec.py

# Raises the fd limits itself (this needs root) and spreads its clients
# over 127.0.0.2, 127.0.0.3, ...; BENCH_C100K=20000 for a quick run.
do-bench-c100k: do-all
	BATON_BIN=$(CURDIR)/$(B) python3 tests/bench/c100k.py

# Install: the binaries, libbaton (static library, header, baton.pc), the
# man pages, the example config and the systemd units (their paths
# rewritten to PREFIX).  DESTDIR stages the whole tree (packaging).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/baton
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install
VERSION := $(shell sed -n 's/^\#define BATON_VERSION "\(.*\)"/\1/p' supervisor/version.h)
MANPAGES := supervisor/man/batond.8 supervisor/man/batonctl.1 supervisor/man/baton.ini.5 worker/libbaton.3
INSTALLED := $(addprefix $(BINDIR)/,batond batonctl baton-http baton-echo) \
	$(LIBDIR)/libbaton.a $(LIBDIR)/pkgconfig/baton.pc $(INCLUDEDIR)/baton.h \
	$(MANDIR)/man8/batond.8 $(MANDIR)/man1/batonctl.1 $(MANDIR)/man5/baton.ini.5 \
	$(MANDIR)/man3/libbaton.3 $(DOCDIR)/baton.ini.example $(DOCDIR)/PROTOCOL.md \
	$(DOCDIR)/README.md $(UNITDIR)/batond.service $(UNITDIR)/batond.socket

ifneq ($(filter install do-install,$(MAKECMDGOALS)),)
ifeq ($(SANITIZE),1)
$(error make install: not with SANITIZE=1 (that build is for the tests))
endif
endif

.PHONY: uninstall
do-install: do-all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 0755 $(PROGS) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 $(LIBBATON) $(DESTDIR)$(LIBDIR)/libbaton.a
	$(INSTALL) -m 0644 worker/baton.h $(DESTDIR)$(INCLUDEDIR)/baton.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
		worker/baton.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/baton.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/baton.pc
	$(INSTALL) -m 0644 supervisor/man/batond.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 supervisor/man/batonctl.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 supervisor/man/baton.ini.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 worker/libbaton.3 $(DESTDIR)$(MANDIR)/man3/
	sed -e 's|%(here)s/../bin/|$(BINDIR)/|; s|%(here)s/../run/|/run/baton/|' etc/baton.ini \
		> $(DESTDIR)$(DOCDIR)/baton.ini.example
	$(INSTALL) -m 0644 worker/PROTOCOL.md README.md $(DESTDIR)$(DOCDIR)/
	for u in batond.service batond.socket; do \
		sed -e 's|/usr/local/bin/|$(BINDIR)/|g' etc/$$u > $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	@echo "installed under $(DESTDIR)$(PREFIX); the config goes in /etc/baton/baton.ini (example: $(DOCDIR)/baton.ini.example)"

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

clean:
	rm -rf bin build

# Debian packages: install when root, otherwise say exactly what to run.
deps:
	@$(call need_pkgs,$(DEB_BUILD),pkg-config --exists $(PKGS) cmocka)
deps-test:
	@$(call need_pkgs,$(DEB_TEST),command -v curl && command -v wrk && command -v ab && command -v socat && command -v python3 && command -v ss && command -v valgrind && command -v groff && command -v go && command -v tmux && command -v strace)
deps-fuzz:
	@$(call need_pkgs,$(DEB_FUZZ),command -v $(FUZZ_CC))

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

# Fuzzing (tests/fuzz/): one libFuzzer target per parser, built with clang
# into build/fuzz/ (objects of their own: the gcc build is not touched).
# `make fuzz` runs each for FUZZ_SECONDS with tests/fuzz/corpus/NAME as
# read-only seeds; new inputs go to build/fuzz/corpus/NAME, crashes to
# build/fuzz/artifacts/, the full output to build/fuzz/fuzz_NAME.log; any
# crash fails the make.  `make fuzz-replay` runs the committed corpus
# through the same targets built by $(CC) with tests/fuzz/replay.c as main(),
# under ASan+UBSan when the compiler has them.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := config proto ctl state httphead
FUZZ_O := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -Wall -Wextra -g -O1 $(FUZZ_SAN) -D_GNU_SOURCE -Icommon -Iworker -Isupervisor \
	$(shell pkg-config --cflags inih 2>/dev/null)
FUZZ_LIB_SRC := $(COMMON_SRC) $(wildcard supervisor/config*.c) supervisor/state.c supervisor/httphead.c
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_O)/fuzz_%)
REPLAY_O := build/fuzz-replay
REPLAY_BINS := $(FUZZ_TARGETS:%=$(REPLAY_O)/fuzz_%)
# ASan+UBSan if $(CC) can build and link with them; worked out once, when used.
REPLAY_SAN = $(eval REPLAY_SAN := $(shell mkdir -p $(REPLAY_O) && \
	printf 'int main(void){return 0;}\n' | $(CC) -fsanitize=address,undefined -x c - \
	-o $(REPLAY_O)/.sancheck >/dev/null 2>&1 && echo '-fsanitize=address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer'; rm -f $(REPLAY_O)/.sancheck))$(REPLAY_SAN)

.PHONY: fuzz-cc
# Keep the targets' own objects, which make would delete as intermediate.
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_O)/obj/tests/fuzz/fuzz_%.o) \
	$(FUZZ_TARGETS:%=$(REPLAY_O)/obj/tests/fuzz/fuzz_%.o) $(REPLAY_O)/obj/tests/fuzz/replay.o
fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
		echo "make fuzz needs clang with libFuzzer; run as root: apt-get install -y clang"; exit 1; }

$(FUZZ_O)/obj/%.o: %.c | fuzz-cc
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_O)/libfuzzed.a: $(FUZZ_LIB_SRC:%.c=$(FUZZ_O)/obj/%.o)
	$(AR) rcs $@ $^

$(FUZZ_O)/fuzz_%: $(FUZZ_O)/obj/tests/fuzz/fuzz_%.o $(FUZZ_O)/libfuzzed.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_INI)

do-fuzz: $(FUZZ_BINS)
	@fail=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_O)/corpus/$$t $(FUZZ_O)/artifacts; \
		dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "== fuzz_$$t for $(FUZZ_SECONDS)s (log: $(FUZZ_O)/fuzz_$$t.log)"; \
		if $(FUZZ_O)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ_O)/artifacts/$$t- $$dict \
			$(FUZZ_O)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_O)/fuzz_$$t.log 2>&1; then \
			grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' \
				$(FUZZ_O)/fuzz_$$t.log | sed 's/^/   /'; \
		else \
			fail=1; tail -n 40 $(FUZZ_O)/fuzz_$$t.log; \
			echo "fuzz_$$t FAILED: input in $(FUZZ_O)/artifacts/; once fixed, add it to tests/fuzz/corpus/$$t/"; \
		fi; \
	done; exit $$fail

$(REPLAY_O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -g -O1 $(REPLAY_SAN) -D_GNU_SOURCE -Icommon -Iworker -Isupervisor \
		$(shell pkg-config --cflags inih 2>/dev/null) -MMD -MP -c $< -o $@

$(REPLAY_O)/libfuzzed.a: $(FUZZ_LIB_SRC:%.c=$(REPLAY_O)/obj/%.o)
	$(AR) rcs $@ $^

$(REPLAY_O)/fuzz_%: $(REPLAY_O)/obj/tests/fuzz/fuzz_%.o $(REPLAY_O)/obj/tests/fuzz/replay.o $(REPLAY_O)/libfuzzed.a
	$(CC) $(REPLAY_SAN) -o $@ $^ $(LDLIBS_INI)

do-fuzz-replay: $(REPLAY_BINS)
	@fail=0; for t in $(FUZZ_TARGETS); do \
		$(REPLAY_O)/fuzz_$$t tests/fuzz/corpus/$$t || fail=1; \
	done; exit $$fail

-include $(shell find $(FUZZ_O) $(REPLAY_O) -name '*.d' 2>/dev/null)

-include $(shell find $(O) -name '*.d' 2>/dev/null)
