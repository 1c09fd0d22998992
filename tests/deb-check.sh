#!/bin/sh
# deb-check.sh: build the Debian packages, check them with lintian,
# install them and run the installcheck programs against them.
#
#     tests/deb-check.sh [--install-deps] [--keep]
#
#   1. copies the source tree (the files git knows, plus untracked ones
#      not ignored) to a temporary directory, so that the build touches
#      nothing here;
#   2. dpkg-buildpackage -us -uc -b there (DEB_BUILD_OPTIONS defaults to
#      parallel=2; nocheck skips the test suite already run elsewhere);
#   3. lintian on the .changes: fails on any error (warnings are shown);
#   4. installs libconnect0, libconnect-dev and libconnect-examples with
#      apt-get, runs tests/install/installcheck.sh against them (README
#      hello world and a threaded program built through pkg-config,
#      against /usr/libexec/libconnect/tcp-echo-server) and checks that
#      `man 3 connect_send`, `man 7 libconnect` and a section 1 page are
#      found;
#   5. removes the packages again unless --keep.
#
# --install-deps first installs dpkg-dev, debhelper, lintian and the
# package's Build-Depends with apt-get.  Needs root (or sudo) for the
# installs.  The .deb files are left in DEB_OUT (default: ./deb-out).
#
# SPDX-License-Identifier: LGPL-2.1-or-later

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${DEB_OUT:-$top/deb-out}
install_deps=no
keep=no
for a in "$@"; do
	case $a in
	--install-deps) install_deps=yes ;;
	--keep) keep=yes ;;
	*) echo "deb-check: unknown argument $a" >&2; exit 2 ;;
	esac
done

sudo=
test "$(id -u)" -eq 0 || sudo=sudo
export DEBIAN_FRONTEND=noninteractive

step() {
	echo
	echo "==== deb-check: $* ($(date -u +%H:%M:%S))"
}

if test $install_deps = yes; then
	step "installing the build dependencies"
	$sudo apt-get install -y --no-install-recommends \
		dpkg-dev debhelper lintian
	$sudo apt-get build-dep -y "$top"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libconnect-deb.XXXXXX")
installed=no
cleanup() {
	if test $installed = yes && test $keep = no; then
		$sudo dpkg -r libconnect-examples libconnect-dev libconnect0 \
			>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

step "copying the source tree"
src=$tmp/libconnect
mkdir "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do test -e "$f" && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf -) | tar -C "$src" -xf -

step "dpkg-buildpackage -us -uc -b"
t0=$(date +%s)
(cd "$src" &&
	DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} \
	dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1 || {
	tail -n 80 "$tmp/build.log"
	echo "deb-check: FAIL: dpkg-buildpackage (log above)"
	exit 1
}
echo "built in $(($(date +%s) - t0)) s:"
ls "$tmp"/*.deb
mkdir -p "$out"
cp "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$out"/

step "lintian"
changes=$(ls "$tmp"/*.changes)
lintian --display-info --fail-on error "$changes" || {
	echo "deb-check: FAIL: lintian reports errors"
	exit 1
}

step "installing the packages"
installed=yes
$sudo apt-get install -y --no-install-recommends \
	"$tmp"/libconnect0_*.deb "$tmp"/libconnect-dev_*.deb \
	"$tmp"/libconnect-examples_*.deb

step "installcheck against the installed packages"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
sh "$top/tests/install/installcheck.sh" \
	--server /usr/libexec/libconnect/tcp-echo-server \
	--libdir "/usr/lib/$multiarch" \
	--readme "$top/README" --source "$top/tests/install/threaded.c"
if command -v man >/dev/null 2>&1; then
	for page in "3 connect_send" "3 connect_send_wait" "3 connect_conn" \
		"7 libconnect" "1 tcp-echo-server"; do
		# shellcheck disable=SC2086
		man -w $page >/dev/null || {
			echo "deb-check: FAIL: man $page not found"
			exit 1
		}
	done
	echo "deb-check: man pages found"
fi

echo
echo "deb-check: PASS"
