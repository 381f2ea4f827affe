#!/bin/sh
# sandbox.sh - what `make run` runs: a private slapd with otasdir's schema
# and access rules in .sandbox/ (built on first use, reused afterwards),
# and build/otasdird in the foreground against it, so that otasctl works
# at once.  Ctrl-C (or SIGTERM/SIGHUP) stops otasdird and slapd; the data
# stays for the next run.  `rm -rf .sandbox` starts over.
#
# Environment: OTASDIR_BUILD (default build/) holds otasdird and otasctl;
# SANDBOX_PORT (default 3899, another free port if that one is taken)
# is used when the sandbox is first built.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd -P)
sb=$top/.sandbox
build=${OTASDIR_BUILD:-$top/build}
want_port=${SANDBOX_PORT:-3899}
daemon_pid=

say() {
	echo "sandbox: $*"
}

# True if nothing listens on 127.0.0.1:$1.
port_free() {
	python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# True if something accepts connections on the Unix socket $1.
socket_live() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError:
    sys.exit(1)' "$1"
}

# Stop otasdird (SIGTERM, SIGKILL after 10 s), then slapd.  Runs once, on
# any exit: normal, error, or a signal turned into exit by the traps.
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
	trap - EXIT INT TERM HUP
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		i=0
		while kill -0 "$daemon_pid" 2>/dev/null; do
			if [ "$i" -eq 100 ]; then
				say "otasdird ignored SIGTERM for 10 s: SIGKILL"
				kill -KILL "$daemon_pid" 2>/dev/null || true
			fi
			sleep 0.1
			i=$((i + 1))
		done
		wait "$daemon_pid" 2>/dev/null || true
	fi
	if [ -x "$sb/stop" ]; then
		"$sb/stop" || true
		say "stopped; the data stays in $sb (make run starts it again)"
	fi
}
# The EXIT trap does the work; a signal just ends the script.  The shell
# runs these traps at once even while it waits for otasdird (see `wait`).
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

first=0
[ -f "$sb/env" ] || first=1
port_opt=
if [ "$first" = 1 ]; then
	if port_free "$want_port"; then
		port_opt="--port $want_port"
	else
		say "port $want_port is taken; using another"
	fi
fi

# Builds .sandbox on first use; afterwards reuses it.  Either way slapd
# runs when it returns.
# shellcheck disable=SC2086
"$top/tests/lib/mkslapd.sh" --form conf --hash ARGON2 $port_opt "$sb"
# shellcheck disable=SC1091
. "$sb/env"

uid=$(id -u)
admin_uids="0"
[ "$uid" = 0 ] || admin_uids="0, $uid"
cat > "$sb/otasdird.yaml" <<EOF
# Written by tests/sandbox.sh (make run) on every start: edits are lost.
socket:
  path: "$sb/otasdird.sock"
  mode: "0660"
ldap:
  uris: ["$LDAPI_URI", "$LDAP_URI"]
  bind_dn: "$SERVICE_DN"
  bind_password_file: "$sb/bind.secret"
  people_dn: "$PEOPLE_DN"
license:
  seats: 25
admins:
  uids: [$admin_uids]
  groups: []
audit:
  path: "$sb/audit.jsonl"
log:
  level: info
EOF

if [ "$(pwd -P)" = "$top" ]; then
	ctl=${build#"$top"/}/otasctl
else
	ctl=$build/otasctl
fi
echo
say "slapd is up: $LDAP_URI and $LDAPI_URI, base $SUFFIX"
if [ "$first" = 1 ]; then
	say "super admin: $SUPERADMIN, password: $(cat "$SUPERADMIN_PW_FILE")"
	say "(shown once; it stays in $SUPERADMIN_PW_FILE)"
else
	say "super admin: $SUPERADMIN, password in $SUPERADMIN_PW_FILE"
fi
cat <<EOF

In another terminal:
  export OTASDIR_SOCKET=$sb/otasdird.sock
  $ctl user list
  $ctl user add alice --name "Alice Liddell" --email alice@example.com
  $ctl login $SUPERADMIN
LDAP directly:
  ldapsearch -x -H $LDAP_URI -D '$ROOT_DN' -y $ROOT_PW_FILE -b '$PEOPLE_DN'

Ctrl-C stops otasdird and slapd.

EOF

if [ ! -x "$build/otasdird" ]; then
	say "$build/otasdird is missing: build it with make" >&2
	exit 1
fi
# A socket left by an otasdird that was killed would stop the new one.
if [ -S "$sb/otasdird.sock" ] && ! socket_live "$sb/otasdird.sock"; then
	rm -f "$sb/otasdird.sock"
fi

# In the background, so that a signal to this script interrupts `wait`
# and the traps stop otasdird and slapd (a foreground child would be
# waited for first).
"$build/otasdird" --config "$sb/otasdird.yaml" &
daemon_pid=$!
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
if [ "$status" -ne 0 ]; then
	say "otasdird exited with status $status" >&2
fi
exit "$status"
