#!/bin/sh
# mkslapd.sh - build, and by default start, a private slapd with otasdir's
# schema and access rules, for the integration tests, `make run` and the
# benchmarks.
#
#   mkslapd.sh [--form conf|cnconfig] [--port N] [--suffix DN]
#              [--no-syncprov] [--no-limits] [--hash ARGON2|SSHA]
#              [--superadmin NAME] [--no-start] [--dbnosync] [--writemap]
#              [--server-id N --peer URI... [--seed-from DIR]] DIR
#
# Multi-provider replication (--form conf only): --server-id gives this
# slapd its serverID (1..4095), each --peer URI adds a refreshAndPersist
# syncrepl consumer of that provider (binding as the rootdn, whose
# password every node of the set shares) and turns multiprovider on.
# --seed-from DIR makes this node a copy of the node built in DIR: same
# secrets and the same data, entryUUIDs and CSNs included (slapcat of
# DIR, which may be running), so the two start in step.  A pair:
#   mkslapd.sh --port P1 --server-id 1 --peer ldap://127.0.0.1:P2 A
#   mkslapd.sh --port P2 --server-id 2 --peer ldap://127.0.0.1:P1 \
#       --seed-from A B
#
# DIR receives everything: slapd.conf or slapd.d/, db/, the ldapi socket,
# the secrets (root.secret, bind.secret, superadmin.secret; mode 0600, no
# trailing newline, so `ldapsearch -y FILE` works), and three scripts:
#   DIR/env    sourceable settings (SUFFIX PEOPLE_DN SERVICE_DN ROOT_DN PORT
#              LDAP_URI LDAPI_URI SLAPD_PIDFILE SLAPD_ARGS and more)
#   DIR/start  starts slapd in the background, waits until it answers
#   DIR/stop   stops it (SIGTERM, SIGKILL after 10 s)
# Run again on a DIR that has an env file, it keeps the data, secrets and
# settings it was built with (the options are ignored) and restarts slapd
# (with --no-start: stops it).  A DIR without an env file (a build that
# failed half-way) is rebuilt; existing secret files are kept.
#
# --dbnosync and --writemap are for the benchmarks: no fsync at commit, and
# LMDB writing through its shared mapping instead of pwrite() of every
# dirty page (whose kernel cost grows with the database: raw adds ran
# 1.3-1.8x slower at 100,000 entries than at 1,000 without it, the same
# with it), so that adds measure slapd and otasdird, not the page cache.
#
# The configuration stands for a site that installed otasdir: the shipped
# rules (schema/otasdir-access.conf, or schema/otasdir-access.ldif applied
# with slapmodify for --form cnconfig) come first, then a few rules of the
# "site's own", which the shipped rules must not break.
set -eu

prog=mkslapd
here=$(cd "$(dirname "$0")" && pwd -P)
SCHEMA_DIR=${OTASDIR_SCHEMA_DIR:-$(cd "$here/../../schema" && pwd -P)}
SYS_SCHEMA_DIR=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
MODULE_DIR=${SLAPD_MODULE_DIR:-/usr/lib/ldap}
SLAPD_BIN=${SLAPD_BIN:-/usr/sbin/slapd}
# Keep the host's ldap.conf and LDAP* variables away from ldap-utils.
LDAPNOINIT=1
export LDAPNOINIT

die() {
	echo "$prog: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<-EOF
	usage: $prog [--form conf|cnconfig] [--port N] [--suffix DN] [--no-syncprov]
	       [--no-limits] [--hash ARGON2|SSHA] [--superadmin NAME] [--no-start]
	       [--dbnosync] [--writemap] [--server-id N --peer URI... [--seed-from DIR]] DIR
	EOF
	exit 2
}

form=conf
port=
suffix=dc=example,dc=com
syncprov=1
limits=1
hash=ARGON2
superadmin='admin'
start=1
dbnosync=0
writemap=0
server_id=
peers=
seed_from=
dir=

while [ $# -gt 0 ]; do
	case $1 in
	--form|--port|--suffix|--hash|--superadmin|--server-id|--peer|--seed-from)
		[ $# -ge 2 ] || usage
		opt=$1 val=$2
		shift 2 ;;
	--form=*|--port=*|--suffix=*|--hash=*|--superadmin=*|--server-id=*|--peer=*|--seed-from=*)
		opt=${1%%=*} val=${1#*=}
		shift ;;
	--no-syncprov) syncprov=0; shift; continue ;;
	--no-limits) limits=0; shift; continue ;;
	--no-start) start=0; shift; continue ;;
	--dbnosync) dbnosync=1; shift; continue ;;
	--writemap) writemap=1; shift; continue ;;
	-h|--help) usage ;;
	-*) echo "$prog: unknown option $1" >&2; usage ;;
	*) [ -z "$dir" ] || usage; dir=$1; shift; continue ;;
	esac
	case $opt in
	--form) form=$val ;;
	--port) port=$val ;;
	--suffix) suffix=$val ;;
	--hash) hash=$val ;;
	--superadmin) superadmin=$val ;;
	--server-id) server_id=$val ;;
	--peer) peers="$peers $val" ;;
	--seed-from) seed_from=$val ;;
	esac
done
[ -n "$dir" ] || usage

case $form in conf|cnconfig) ;; *) die "--form must be conf or cnconfig" ;; esac
case $hash in ARGON2|SSHA) ;; *) die "--hash must be ARGON2 or SSHA" ;; esac
case $port in
'') ;;
*[!0-9]*) die "--port must be a number" ;;
*)
	if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
		die "--port out of range"
	fi ;;
esac
case $superadmin in
[A-Za-z0-9]*) ;;
*) die "--superadmin must start with a letter or digit" ;;
esac
case $superadmin in *[!A-Za-z0-9._-]*) die "--superadmin: bad username" ;; esac
case $server_id in
'') [ -z "$peers" ] || die "--peer needs --server-id" ;;
*[!0-9]*) die "--server-id must be a number" ;;
*)
	if [ "$server_id" -lt 1 ] || [ "$server_id" -gt 4095 ]; then
		die "--server-id out of range (1..4095)"
	fi
	[ "$form" = conf ] || die "--server-id needs --form conf"
	[ "$syncprov" = 1 ] || die "--server-id needs syncprov" ;;
esac
for p in $peers; do
	case $p in
	ldap://*|ldapi://*|ldaps://*) ;;
	*) die "--peer $p: not an LDAP URI" ;;
	esac
	case $p in *[!A-Za-z0-9.:/%_-]*) die "--peer $p: use a plain URI" ;; esac
done
if [ -n "$seed_from" ]; then
	[ -f "$seed_from/env" ] || die "--seed-from $seed_from: no built slapd there"
	seed_from=$(cd "$seed_from" && pwd -P)
fi

# The suffix entry (checked before anything is written): dc=x,...
# becomes a dcObject+organization, o=x,... an organization.  Quotes and
# backslashes would need escaping in slapd.conf and LDIF: refused.
case $suffix in
*[\"\\]*|'') die "--suffix: use a plain DN without quotes or backslashes" ;;
esac
suffix_rdn=${suffix%%,*}
suffix_attr=$(printf '%s' "${suffix_rdn%%=*}" | tr '[:upper:]' '[:lower:]')
suffix_val=${suffix_rdn#*=}
case $suffix_attr in
dc|o) ;;
*) die "--suffix must start with dc= or o=" ;;
esac

# Paths go unquoted into slapd.conf and the URL list: keep them plain.
case $dir in
*[!A-Za-z0-9._/+-]*) die "$dir: use a path of letters, digits and ._/+- only" ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
case $dir in
*[!A-Za-z0-9._/+-]*) die "$dir: use a path of letters, digits and ._/+- only" ;;
esac
# sun_path holds 108 bytes including the NUL.
[ ${#dir} -le 100 ] || die "$dir: too long for a unix socket path (max 100)"

# Reuse an existing build: its data, settings and secrets stay.
if [ -f "$dir/env" ]; then
	echo "$prog: reusing $dir"
	"$dir/stop" >/dev/null
	[ "$start" = 1 ] && exec "$dir/start"
	exit 0
fi

# --- helpers ---------------------------------------------------------------

# Print a random password: 24 hex digits (96 bits).
random_secret() {
	od -An -v -N64 -tx1 /dev/urandom | tr -d ' \n' |
	    awk '{ printf "%s", substr($0, 1, 24) }'
}

# Create the secret file $1 (mode 0600, no newline) unless it exists.
make_secret() {
	[ -s "$1" ] && return 0
	(umask 077 && random_secret > "$1")
}

# Print the {$hash} hash of the contents of file $1.
hash_file() {
	if [ "$hash" = ARGON2 ]; then
		slappasswd -h '{ARGON2}' -o module-path="$MODULE_DIR" \
		    -o module-load=argon2 -T "$1"
	else
		slappasswd -h '{SSHA}' -T "$1"
	fi
}

# Escape $1 for the replacement part of a sed s||| command.
sed_repl() {
	printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

# Print the template $1 with its placeholders filled in.
fill_template() {
	sed -e "s|@SUFFIX@|$(sed_repl "$suffix")|g" \
	    -e "s|@PEOPLE_DN@|$(sed_repl "$people_dn")|g" \
	    -e "s|@SERVICE_DN@|$(sed_repl "$service_dn")|g" "$1"
}

# Percent-encode $1 for an ldapi:// URL (every byte but [A-Za-z0-9._~-]).
url_encode() {
	printf '%s' "$1" | LC_ALL=C awk '
	BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
	{
		for (i = 1; i <= length($0); i++) {
			c = substr($0, i, 1)
			if (c ~ /[A-Za-z0-9._~-]/) printf "%s", c
			else printf "%%%02X", ord[c]
		}
	}'
}

# Print a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Quote $1 for a POSIX shell.
shq() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# --- settings --------------------------------------------------------------

for f in otasdir.schema otasdir.ldif otasdir-access.conf otasdir-access.ldif; do
	[ -r "$SCHEMA_DIR/$f" ] || die "$SCHEMA_DIR/$f: missing"
done
for t in "$SLAPD_BIN" slapadd slapmodify slappasswd ldapwhoami; do
	command -v "$t" >/dev/null 2>&1 ||
	    die "$t not found (install slapd and ldap-utils: tests/deps.sh)"
done

people_dn="ou=people,$suffix"
service_dn="cn=otasdird,$suffix"
root_dn="cn=admin,$suffix"
superadmin_dn="uid=$superadmin,$people_dn"
[ -n "$port" ] || port=$(free_port)
ldapi_uri="ldapi://$(url_encode "$dir/ldapi")"
ldap_uri="ldap://127.0.0.1:$port"
pidfile="$dir/slapd.pid"
if [ "$form" = conf ]; then
	conf_args="-f $dir/slapd.conf"
else
	conf_args="-F $dir/slapd.d"
fi


# --- secrets and hashes ----------------------------------------------------

# A copy of another node shares its secrets (replication binds as the
# rootdn with them; clients bind to either node with the same ones).
if [ -n "$seed_from" ]; then
	for f in root.secret bind.secret superadmin.secret; do
		(umask 077 && cp "$seed_from/$f" "$dir/$f")
	done
fi
make_secret "$dir/root.secret"
make_secret "$dir/bind.secret"
make_secret "$dir/superadmin.secret"	# never overwritten: see make_secret
chmod 0600 "$dir/root.secret" "$dir/bind.secret" "$dir/superadmin.secret"
root_hash=$(hash_file "$dir/root.secret")
bind_hash=$(hash_file "$dir/bind.secret")
superadmin_hash=$(hash_file "$dir/superadmin.secret")

# A half-built DIR (no env file) is rebuilt from scratch, secrets aside.
rm -rf "$dir/db" "$dir/slapd.d" "$dir/slapd.conf"
mkdir -p "$dir/db"
(umask 077 && : > "$dir/build.ldif")	# holds hashes: keep it private

# --- configuration ---------------------------------------------------------

# The indexes: objectClass for every search, uid for lookups by name,
# status and role for clients that filter on them, entryUUID/entryCSN for
# syncprov.  No substring indexes: otasdird answers `search` from its
# in-memory view, and each of them multiplies the cost of every add at
# scale (tests/bench/RESULTS.md measured raw adds 5x slower at 100,000
# entries with uid, cn, mail and displayName `sub`).
indexes='objectClass eq
uid eq
otasAccountStatus,otasRole eq
entryUUID eq
entryCSN eq'

# The rules of "the site" that follow otasdir's: those of Debian's stock
# slapd (every bind DN may bind and change its own password; anyone may
# read the rest), so the tests see that otasdir's rules hold on their own.
site_acl_1='to attrs=userPassword by self write by anonymous auth by * none'
site_acl_2='to * by * read'

limits_line="dn.exact=\"$service_dn\" size=unlimited time=unlimited"

if [ "$form" = conf ]; then
	{
		echo "# Generated by tests/lib/mkslapd.sh; rebuilt from scratch on demand."
		echo "include $SYS_SCHEMA_DIR/core.schema"
		echo "include $SYS_SCHEMA_DIR/cosine.schema"
		echo "include $SYS_SCHEMA_DIR/inetorgperson.schema"
		echo "include $SCHEMA_DIR/otasdir.schema"
		echo
		echo "pidfile $pidfile"
		echo "argsfile $dir/slapd.args"
		[ -n "$server_id" ] && echo "serverID $server_id"
		echo "loglevel none"
		echo "modulepath $MODULE_DIR"
		echo "moduleload back_mdb"
		[ "$syncprov" = 1 ] && echo "moduleload syncprov"
		if [ "$hash" = ARGON2 ]; then
			echo "moduleload argon2"
			echo "password-hash {ARGON2}"
		else
			echo "password-hash {SSHA}"
		fi
		echo
		echo "# Frontend rules, appended to every database's rules."
		echo "access to dn.base=\"\" by * read"
		echo "access to dn.base=\"cn=Subschema\" by * read"
		echo
		echo "database mdb"
		echo "suffix \"$suffix\""
		echo "rootdn \"$root_dn\""
		echo "rootpw $root_hash"
		echo "directory $dir/db"
		echo "maxsize 2147483648"
		[ "$dbnosync" = 1 ] && echo "dbnosync"
		[ "$writemap" = 1 ] && echo "envflags writemap"
		echo "$indexes" | sed 's/^/index /'
		[ "$limits" = 1 ] && echo "limits $limits_line"
		echo
		echo "# ---- schema/otasdir-access.conf, filled in ----"
		fill_template "$SCHEMA_DIR/otasdir-access.conf"
		echo
		echo "# ---- the site's own rules ----"
		echo "access $site_acl_1"
		echo "access $site_acl_2"
		if [ -n "$peers" ]; then
			echo
			echo "# ---- multi-provider replication ----"
			rid=0
			for p in $peers; do
				rid=$((rid + 1))
				printf 'syncrepl rid=%03d provider=%s type=refreshAndPersist\n' "$rid" "$p"
				printf '\tbindmethod=simple binddn="%s" credentials=%s\n' "$root_dn" "$(cat "$dir/root.secret")"
				printf '\tsearchbase="%s" scope=sub schemachecking=off\n' "$suffix"
				printf '\tretry="1 +" timeout=3 network-timeout=2\n'
			done
			echo "multiprovider on"
		fi
		if [ "$syncprov" = 1 ]; then
			echo
			echo "overlay syncprov"
			echo "syncprov-checkpoint 100 10"
			echo "syncprov-sessionlog 10000"
		fi
	} > "$dir/slapd.conf"
	# It may hold the rootdn's password (syncrepl credentials).
	chmod 0600 "$dir/slapd.conf"
else
	uid=$(id -u) gid=$(id -g)
	{
		cat <<-EOF
		dn: cn=config
		objectClass: olcGlobal
		cn: config
		olcPidFile: $pidfile
		olcArgsFile: $dir/slapd.args
		olcLogLevel: none

		dn: cn=module{0},cn=config
		objectClass: olcModuleList
		cn: module{0}
		olcModulePath: $MODULE_DIR
		olcModuleLoad: back_mdb
		EOF
		[ "$syncprov" = 1 ] && echo "olcModuleLoad: syncprov"
		[ "$hash" = ARGON2 ] && echo "olcModuleLoad: argon2"
		cat <<-EOF

		dn: cn=schema,cn=config
		objectClass: olcSchemaConfig
		cn: schema

		EOF
		for s in "$SYS_SCHEMA_DIR/core.ldif" "$SYS_SCHEMA_DIR/cosine.ldif" \
		    "$SYS_SCHEMA_DIR/inetorgperson.ldif" "$SCHEMA_DIR/otasdir.ldif"; do
			cat "$s"
			echo
		done
		cat <<-EOF
		dn: olcDatabase={-1}frontend,cn=config
		objectClass: olcDatabaseConfig
		objectClass: olcFrontendConfig
		olcDatabase: {-1}frontend
		olcPasswordHash: {$hash}
		olcAccess: {0}to dn.base="" by * read
		olcAccess: {1}to dn.base="cn=Subschema" by * read

		dn: olcDatabase={0}config,cn=config
		objectClass: olcDatabaseConfig
		olcDatabase: {0}config
		olcAccess: {0}to * by dn.exact=gidNumber=$gid+uidNumber=$uid,cn=peercred,cn=external,cn=auth manage by * none

		dn: olcDatabase={1}mdb,cn=config
		objectClass: olcDatabaseConfig
		objectClass: olcMdbConfig
		olcDatabase: {1}mdb
		olcSuffix: $suffix
		olcRootDN: $root_dn
		olcRootPW: $root_hash
		olcDbDirectory: $dir/db
		olcDbMaxSize: 2147483648
		EOF
		[ "$dbnosync" = 1 ] && echo "olcDbNoSync: TRUE"
		[ "$writemap" = 1 ] && echo "olcDbEnvFlags: writemap"
		echo "$indexes" | sed 's/^/olcDbIndex: /'
		[ "$limits" = 1 ] && echo "olcLimits: {0}$limits_line"
		# Only the site's rules here: the shipped LDIF puts otasdir's
		# in front of them below, as it would on a real server.
		echo "olcAccess: {0}$site_acl_1"
		echo "olcAccess: {1}$site_acl_2"
		if [ "$syncprov" = 1 ]; then
			cat <<-EOF

			dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
			objectClass: olcOverlayConfig
			objectClass: olcSyncProvConfig
			olcOverlay: {0}syncprov
			olcSpCheckpoint: 100 10
			olcSpSessionlog: 10000
			EOF
		fi
	} > "$dir/config.ldif"
	mkdir "$dir/slapd.d"
	slapadd -n0 -F "$dir/slapd.d" -l "$dir/config.ldif" ||
	    die "slapadd -n0 of $dir/config.ldif failed"
	# The shipped LDIF, as an operator would apply it (its dn already
	# names olcDatabase={1}mdb, which is ours).
	fill_template "$SCHEMA_DIR/otasdir-access.ldif" > "$dir/access.ldif"
	slapmodify -n0 -F "$dir/slapd.d" -l "$dir/access.ldif" ||
	    die "slapmodify of $dir/access.ldif failed"
fi

# --- base entries ----------------------------------------------------------

if [ -n "$seed_from" ]; then
	# The other node's data as it is: same entryUUIDs, entryCSNs and
	# contextCSN, so that replication starts from a common state.
	# shellcheck disable=SC1091
	seed_conf_args=$(. "$seed_from/env" && echo "$SLAPD_CONF_ARGS")
	# shellcheck disable=SC2086
	slapcat $seed_conf_args -b "$suffix" -l "$dir/build.ldif" ||
	    die "slapcat of $seed_from failed"
	# shellcheck disable=SC2086
	slapadd -q $conf_args -b "$suffix" -l "$dir/build.ldif" ||
	    die "slapadd of the data of $seed_from failed"
	rm -f "$dir/build.ldif"
else
{
	echo "dn: $suffix"
	if [ "$suffix_attr" = dc ]; then
		echo "objectClass: dcObject"
		echo "objectClass: organization"
		echo "dc: $suffix_val"
		echo "o: $suffix_val"
	else
		echo "objectClass: organization"
		echo "o: $suffix_val"
	fi
	cat <<-EOF

	dn: $people_dn
	objectClass: organizationalUnit
	ou: people
	description: otasdir platform accounts

	dn: $service_dn
	objectClass: applicationProcess
	objectClass: simpleSecurityObject
	cn: otasdird
	description: the otasdir daemon's bind DN
	userPassword: $bind_hash

	dn: $superadmin_dn
	objectClass: inetOrgPerson
	objectClass: otasAccount
	uid: $superadmin
	cn: Super Admin
	displayName: Super Admin
	sn: Admin
	mail: admin@example.com
	otasAccountStatus: active
	otasRole: superadmin
	userPassword: $superadmin_hash
	EOF
} > "$dir/build.ldif"

# -w writes the suffix's contextCSN, which syncprov starts from.
wflag=
[ "$syncprov" = 1 ] && wflag=-w
# shellcheck disable=SC2086
slapadd -q $wflag $conf_args -b "$suffix" -l "$dir/build.ldif" ||
    die "slapadd of the base entries failed"
rm -f "$dir/build.ldif"
fi

# --- env, start, stop ------------------------------------------------------

urls="$ldapi_uri $ldap_uri"
{
	echo "# Settings of the private slapd in $dir (tests/lib/mkslapd.sh)."
	echo "DIR=$(shq "$dir")"
	echo "FORM=$form"
	echo "HASH=$hash"
	echo "SERVER_ID=$server_id"
	echo "PEERS=$(shq "${peers# }")"
	echo "SYNCPROV=$syncprov"
	echo "LIMITS=$limits"
	echo "SUFFIX=$(shq "$suffix")"
	echo "PEOPLE_DN=$(shq "$people_dn")"
	echo "SERVICE_DN=$(shq "$service_dn")"
	echo "ROOT_DN=$(shq "$root_dn")"
	echo "SUPERADMIN=$(shq "$superadmin")"
	echo "SUPERADMIN_DN=$(shq "$superadmin_dn")"
	echo "ROOT_PW_FILE=$(shq "$dir/root.secret")"
	echo "BIND_PW_FILE=$(shq "$dir/bind.secret")"
	echo "SUPERADMIN_PW_FILE=$(shq "$dir/superadmin.secret")"
	echo "PORT=$port"
	echo "LDAP_URI=$(shq "$ldap_uri")"
	echo "LDAPI_URI=$(shq "$ldapi_uri")"
	echo "SLAPD_BIN=$(shq "$SLAPD_BIN")"
	echo "SLAPD_URLS=$(shq "$urls")"
	echo "SLAPD_CONF_ARGS=$(shq "$conf_args")"
	echo "# slapd's arguments, shell-quoted: eval \"\$SLAPD_BIN \$SLAPD_ARGS\""
	echo "SLAPD_ARGS=$(shq "-h '$urls' $conf_args")"
	echo "SLAPD_PIDFILE=$(shq "$pidfile")"
	echo "SLAPD_START=$(shq "$dir/start")"
	echo "SLAPD_STOP=$(shq "$dir/stop")"
} > "$dir/env.new"

cat > "$dir/start" <<EOF
#!/bin/sh
# Start the private slapd in $dir in the background and wait (at most
# 10 s) until it answers on \$LDAP_URI.  Written by tests/lib/mkslapd.sh.
set -eu
. "$dir/env"
LDAPNOINIT=1
export LDAPNOINIT

# True when the pid file names a live slapd of this directory.
running() {
	pid=\$(cat "\$SLAPD_PIDFILE" 2>/dev/null) || return 1
	case \$(ps -p "\$pid" -o args= 2>/dev/null) in
	*slapd*"\$DIR"*) return 0 ;;
	*) return 1 ;;
	esac
}

if running; then
	echo "slapd in \$DIR already runs (pid \$pid)" >&2
	exit 0
fi
rm -f "\$SLAPD_PIDFILE"
# slapd detaches once its listeners are open; it fails here if it cannot.
# shellcheck disable=SC2086
"\$SLAPD_BIN" -h "\$SLAPD_URLS" \$SLAPD_CONF_ARGS || {
	echo "slapd in \$DIR failed to start; see: \$SLAPD_BIN -h '\$SLAPD_URLS' \$SLAPD_CONF_ARGS -d stats" >&2
	exit 1
}
i=0
while [ \$i -lt 100 ]; do
	ldapwhoami -x -H "\$LDAP_URI" >/dev/null 2>&1 && exit 0
	sleep 0.1
	i=\$((i + 1))
done
echo "slapd in \$DIR does not answer on \$LDAP_URI after 10 s" >&2
exit 1
EOF

cat > "$dir/stop" <<EOF
#!/bin/sh
# Stop the private slapd in $dir: SIGTERM, then SIGKILL if it has not
# exited after 10 s.  Succeeds when it was not running.
set -eu
. "$dir/env"

alive() {
	case \$(ps -p "\$pid" -o args= 2>/dev/null) in
	*slapd*"\$DIR"*) return 0 ;;
	*) return 1 ;;
	esac
}

pid=\$(cat "\$SLAPD_PIDFILE" 2>/dev/null) || exit 0
alive || { rm -f "\$SLAPD_PIDFILE"; exit 0; }
kill -TERM "\$pid" 2>/dev/null || true
i=0
while alive; do
	if [ \$i -eq 100 ]; then
		echo "slapd \$pid in \$DIR ignored SIGTERM for 10 s: SIGKILL" >&2
		kill -KILL "\$pid" 2>/dev/null || true
	fi
	sleep 0.1
	i=\$((i + 1))
done
rm -f "\$SLAPD_PIDFILE"
EOF
chmod 0755 "$dir/start" "$dir/stop"
# The env file comes last: its presence marks a finished build.
mv "$dir/env.new" "$dir/env"

if [ "$start" = 1 ]; then
	exec "$dir/start"
fi
