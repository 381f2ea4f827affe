#!/bin/sh
# Install the Debian packages otasdir needs to build, test and run its
# sandbox.  Called by `make check`, `make run` and `make bench`; as root it
# installs what is missing, otherwise it names what is missing and fails.
set -eu

PKGS="gcc make pkg-config libldap-dev libevent-dev libcjson-dev libyaml-dev
libargon2-dev nettle-dev libcrypt-dev
slapd ldap-utils libcmocka-dev python3 python3-pytest clang
libclang-rt-14-dev valgrind mandoc systemd strace logrotate
openssl jq python3-yaml"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root: apt-get install$missing" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# slapd's maintainer scripts must not start the system-wide slapd: the
# tests and the sandbox run private ones.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 0755 "$policy"
	made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
