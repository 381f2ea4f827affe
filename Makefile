# otasdir - a plain GNU Makefile.  `make` builds, `make check` tests,
# `make run` starts the sandbox, `make bench` benchmarks.  See README.md.

PREFIX		?= /usr/local
SBINDIR		?= $(PREFIX)/sbin
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
DATADIR		?= $(PREFIX)/share/otasdir
SYSCONFDIR	?= /etc
DOCDIR		?= $(PREFIX)/share/doc/otasdir
# System-wide places systemd and logrotate read, whatever PREFIX is.
UNITDIR		?= /lib/systemd/system
SYSUSERSDIR	?= /usr/lib/sysusers.d
LOGROTATEDIR	?= $(SYSCONFDIR)/logrotate.d
DESTDIR		?=

CC		?= cc
PKG_CONFIG	?= pkg-config
PKGS		:= ldap libevent libcjson yaml-0.1 libargon2 nettle libcrypt
BUILD		?= build

WARNINGS	:= -Wall -Wextra -Wshadow -Wstrict-prototypes \
		   -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wformat=2 \
		   -Wno-unused-parameter
ifneq ($(WERROR),)
WARNINGS	+= -Werror
endif
ifneq ($(CI),)
WARNINGS	+= -Werror
endif

OPT		?= -O2 -g
PKG_CFLAGS	 = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	 = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CPPFLAGS	+= -D_GNU_SOURCE -Isrc -Idaemon
CFLAGS		+= -std=c17 $(OPT) $(WARNINGS) -fno-strict-aliasing \
		   -fstack-protector-strong -D_FORTIFY_SOURCE=2 -pthread \
		   $(SANFLAGS)
# -pthread: auth.c checks password hashes on a worker thread.
LDFLAGS		+= -pthread $(SANFLAGS)

# Shared by the daemon and the client.
COMMON_SRCS	:= src/valid.c
# The daemon, without main (unit tests and fuzzers link these).
DAEMON_SRCS	:= daemon/clock.c daemon/log.c daemon/cfg.c daemon/rpc.c daemon/esc.c \
		   daemon/ctl.c daemon/conn.c daemon/method.c daemon/server.c \
		   daemon/ident.c daemon/ldc.c daemon/dir.c daemon/sd.c \
		   daemon/ordset.c daemon/view.c daemon/seat.c daemon/user.c \
		   daemon/cursor.c daemon/auth.c daemon/audit.c
DAEMON_MAIN	:= daemon/otasdird.c
CTL_SRCS	:= src/otasctl.c

COMMON_OBJS	:= $(COMMON_SRCS:%.c=$(BUILD)/%.o)
DAEMON_OBJS	:= $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
CTL_OBJS	:= $(CTL_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS	:= $(wildcard tests/unit/test_*.c)
UNIT_BINS	:= $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps check check-unit check-integ check-asan check-valgrind \
	check-fuzz run bench fuzz install uninstall clean

all: $(BUILD)/otasdird $(BUILD)/otasctl

# Installs missing Debian packages (as root) or says which are missing.
deps:
	@tests/deps.sh

$(BUILD)/%.o: %.c daemon/otasdird.h src/proto.h src/valid.h
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/otasdird: $(DAEMON_OBJS) $(COMMON_OBJS) $(BUILD)/$(DAEMON_MAIN:.c=.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/otasctl: $(CTL_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs libcjson)

$(BUILD)/tests/%: tests/unit/%.c $(DAEMON_OBJS) $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -o $@ $< $(DAEMON_OBJS) \
	    $(COMMON_OBJS) $(PKG_LIBS) -lcmocka

# Each stage prints its wall time.
STAGE		 = @t0=$$(date +%s); $(MAKE) --no-print-directory $(1) && \
		   echo "== $(1): $$(( $$(date +%s) - t0 )) s"

check: deps
	@$(MAKE) --no-print-directory all
	$(call STAGE,check-unit)
	$(call STAGE,check-integ)
	$(call STAGE,check-asan)
	$(call STAGE,check-valgrind)
	$(call STAGE,check-fuzz)

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Integration tests: a real slapd and a real otasdird, driven through the
# socket and otasctl.  INTEG_TESTS picks files, PYTEST_ARGS adds options
# (e.g. INTEG_TESTS=tests/integ/test_seats.py PYTEST_ARGS="-k status");
# both apply to check-asan too.
INTEG_TESTS	?= tests/integ
check-integ: all
	OTASDIR_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q \
	    $(INTEG_TESTS) $(PYTEST_ARGS)

# The integration suite again against an ASan+UBSan build.
check-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	    SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	OTASDIR_BUILD=$(abspath build/asan) OTASDIR_SANITIZED=1 \
	    /usr/bin/python3 -m pytest -q $(INTEG_TESTS) $(PYTEST_ARGS)

# The integration suite once more with every otasdird under valgrind's
# memcheck: any invalid access, or a definite or indirect leak at exit,
# fails the test that stopped it (otasenv.py, OTASDIR_VALGRIND).
# INTEG_TESTS and PYTEST_ARGS narrow it as they do check-integ.
check-valgrind: all
	OTASDIR_BUILD=$(abspath $(BUILD)) OTASDIR_VALGRIND=1 \
	    /usr/bin/python3 -m pytest -q $(INTEG_TESTS) $(PYTEST_ARGS)

# --- fuzzing ----------------------------------------------------------------
# libFuzzer targets (tests/fuzz/fuzz_*.c) built with clang and ASan+UBSan
# against the daemon's sources.  `make fuzz` runs each for FUZZ_SECONDS
# from its seed corpus (tests/fuzz/corpus/<target>/; new inputs go to
# $(BUILD)/fuzz/corpus/<target>/); `make check` runs each for
# FUZZ_CHECK_SECONDS.  A finding leaves crash-*/leak-*/timeout-* in
# $(BUILD)/fuzz/ and fails the target.
FUZZ_CC		?= clang
FUZZ_SECONDS	?= 60
FUZZ_CHECK_SECONDS ?= 10
FUZZ_BUILD	:= $(BUILD)/fuzz
FUZZ_SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=all \
		   -fno-omit-frame-pointer
FUZZ_CFLAGS	 = -std=c17 -g -O1 $(WARNINGS) $(FUZZ_SAN) -pthread \
		   -D_GNU_SOURCE -Isrc -Idaemon $(PKG_CFLAGS)
FUZZ_TARGETS	:= $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS	:= $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_OBJS	:= $(DAEMON_SRCS:%.c=$(FUZZ_BUILD)/%.o) \
		   $(COMMON_SRCS:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/%.o: %.c daemon/otasdird.h src/proto.h src/valid.h
	@mkdir -p $(dir $@)
	@echo "CC (fuzz) $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# An archive, so that each target takes only the objects it needs.
$(FUZZ_BUILD)/libotasdird.a: $(FUZZ_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libotasdird.a
	@echo "LD (fuzz) $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_BUILD)/libotasdird.a $(PKG_LIBS)

# $(call FUZZ_RUN,seconds): run every target for that long.
FUZZ_RUN	 = @set -e; cd $(FUZZ_BUILD); for t in $(FUZZ_TARGETS); do \
		   mkdir -p corpus/$$t; \
		   echo "== $$t ($(1) s)"; \
		   ./$$t -max_total_time=$(1) -print_final_stats=1 \
		       -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
		       corpus/$$t $(abspath tests/fuzz/corpus)/$$t \
		       2>$$t.log || { tail -60 $$t.log; exit 1; }; \
		   grep -E "^(stat::number_of_executed_units|Done)" $$t.log \
		       | tail -2; \
		   done

fuzz: $(FUZZ_BINS)
	$(call FUZZ_RUN,$(FUZZ_SECONDS))

check-fuzz: $(FUZZ_BINS)
	$(call FUZZ_RUN,$(FUZZ_CHECK_SECONDS))

run: deps all
	@tests/sandbox.sh

# The benchmark: tests/bench/loadgen.c drives otasdird and raw libldap
# side by side against private slapds of 1,000 and 100,000 accounts;
# tests/bench/bench.py prints the table and writes bench-results/.
# Under 10 minutes on 2 cores.  BENCH_SIZES, BENCH_REPS, BENCH_DURATION,
# BENCH_WINDOW narrow or widen it (tests/bench/README.md).
BENCH_PKGS	:= ldap libcjson

$(BUILD)/bench/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	@echo "CC $@"
	@$(CC) $(CPPFLAGS) $(shell $(PKG_CONFIG) --cflags $(BENCH_PKGS)) \
	    $(CFLAGS) -Werror -o $@ $< $(LDFLAGS) \
	    $(shell $(PKG_CONFIG) --libs $(BENCH_PKGS))

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/loadgen
	OTASDIR_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/bench.py \
	    $(BENCH_ARGS)

# `make install` copies files only (tests/integ/test_install.py lists
# them); it creates no user and starts nothing: docs/operator.md has the
# steps that follow.  The example config goes next to the real one as
# otasdird.yaml.example, so a real otasdird.yaml is never overwritten.
# The units' paths (the daemon, /etc/otasdir) are rewritten for SBINDIR
# and SYSCONFDIR; DESTDIR is not part of them.
SCHEMA_FILES	:= otasdir.schema otasdir.ldif otasdir-access.conf \
		   otasdir-access.ldif
UNIT_FILES	:= otasdird.service otasdird.socket
MAN_PAGES	:= man/otasctl.1 man/otasdird.yaml.5 man/otasdird.8
DOC_FILES	:= $(wildcard README.md docs/*.md)
UNIT_SED	:= -e 's|/usr/local/sbin/otasdird|$(SBINDIR)/otasdird|g' \
		   -e 's|/etc/otasdir/|$(SYSCONFDIR)/otasdir/|g'

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(DATADIR)/schema $(DESTDIR)$(SYSCONFDIR)/otasdir \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(LOGROTATEDIR) $(DESTDIR)$(DOCDIR) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man,1 5 8)
	install -m 0755 $(BUILD)/otasdird $(DESTDIR)$(SBINDIR)/otasdird
	install -m 0755 $(BUILD)/otasctl $(DESTDIR)$(BINDIR)/otasctl
	install -m 0644 $(addprefix schema/,$(SCHEMA_FILES)) \
	    $(DESTDIR)$(DATADIR)/schema/
	install -m 0644 conf/otasdird.yaml \
	    $(DESTDIR)$(SYSCONFDIR)/otasdir/otasdird.yaml.example
	set -e; for u in $(UNIT_FILES); do \
	    sed $(UNIT_SED) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp; \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp; \
	    mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; \
	done
	install -m 0644 systemd/otasdird.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/otasdird.conf
	install -m 0644 conf/otasdird.logrotate \
	    $(DESTDIR)$(LOGROTATEDIR)/otasdird
	set -e; for m in $(MAN_PAGES); do \
	    install -m 0644 $$m \
	        $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}; \
	done
	$(if $(DOC_FILES),install -m 0644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/)

# Removes what install copied; never otasdird.yaml, bind.secret or the
# audit log, and no directory.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/otasdird $(DESTDIR)$(BINDIR)/otasctl
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/schema/,$(SCHEMA_FILES))
	rm -f $(DESTDIR)$(SYSCONFDIR)/otasdir/otasdird.yaml.example
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNIT_FILES))
	rm -f $(DESTDIR)$(SYSUSERSDIR)/otasdird.conf
	rm -f $(DESTDIR)$(LOGROTATEDIR)/otasdird
	rm -f $(DESTDIR)$(MANDIR)/man1/otasctl.1 \
	    $(DESTDIR)$(MANDIR)/man5/otasdird.yaml.5 \
	    $(DESTDIR)$(MANDIR)/man8/otasdird.8
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOC_FILES)))

clean:
	rm -rf $(BUILD)
