#!/bin/sh
# Installs the Debian packages the tests use, when they are missing:
#   diod       diodls and diodcat, a real external 9P2000.L client
#   util-linux setpriv, to run shell commands as another user
#   perl       the scheduler's live workloads (Time::HiRes, in Debian's perl)
#   python3    the memory manager's mapping process in hal/vm's live test
# Needs root (apt-get); without root it only says what is missing.
set -e
missing=""
command -v diodls >/dev/null 2>&1 || [ -x /usr/sbin/diodls ] || missing="$missing diod"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
perl -MTime::HiRes -e1 >/dev/null 2>&1 || missing="$missing perl"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing (run as root to install)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing
