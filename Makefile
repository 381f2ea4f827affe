# otasdir - a plain GNU Makefile.  `make` builds, `make check` tests,
# `make run` starts the sandbox, `make bench` benchmarks.  See README.md.

PREFIX		?= /usr/local
SBINDIR		?= $(PREFIX)/sbin
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
DATADIR		?= $(PREFIX)/share/otasdir
SYSCONFDIR	?= /etc
UNITDIR		?= /lib/systemd/system
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
		   daemon/view.c daemon/seat.c daemon/user.c daemon/auth.c \
		   daemon/audit.c
DAEMON_MAIN	:= daemon/otasdird.c
CTL_SRCS	:= src/otasctl.c

COMMON_OBJS	:= $(COMMON_SRCS:%.c=$(BUILD)/%.o)
DAEMON_OBJS	:= $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
CTL_OBJS	:= $(CTL_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS	:= $(wildcard tests/unit/test_*.c)
UNIT_BINS	:= $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps check check-unit check-integ check-asan run bench fuzz \
	install uninstall clean

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

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-unit
	@$(MAKE) --no-print-directory check-integ
	@$(MAKE) --no-print-directory check-asan

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Integration tests: a real slapd and a real otasdird, driven through the
# socket and otasctl.  PYTEST_ARGS narrows them (e.g. -k status).
check-integ: all
	OTASDIR_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q \
	    tests/integ $(PYTEST_ARGS)

# The integration suite again against an ASan+UBSan build.
check-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	    SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	OTASDIR_BUILD=$(abspath build/asan) OTASDIR_SANITIZED=1 \
	    /usr/bin/python3 -m pytest -q tests/integ $(PYTEST_ARGS)

run: deps all
	@tests/sandbox.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/otasdird $(DESTDIR)$(SBINDIR)/otasdird
	install -m 0755 $(BUILD)/otasctl $(DESTDIR)$(BINDIR)/otasctl

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/otasdird $(DESTDIR)$(BINDIR)/otasctl

clean:
	rm -rf $(BUILD)
