# tests/install/local.mk: checks of what `make install` installs, and the
# ABI files; included from Makefile.am.
# SPDX-License-Identifier: LGPL-2.1-or-later

# `make installcheck` (run by `make distcheck` after its `make install`):
# build the README's hello world and a threaded program against the
# installed header, library and libconnect.pc through pkg-config, and run
# them against the installed tcp-echo-server on 127.0.0.1 port 0.
installcheck-local:
	CC='$(CC)' PKG_CONFIG='$(PKG_CONFIG)' \
	$(SHELL) '$(srcdir)/tests/install/installcheck.sh' \
		--pkg-config-path '$(DESTDIR)$(pkgconfigdir)' \
		--libdir '$(DESTDIR)$(libdir)' \
		--server '$(DESTDIR)$(pkglibexecdir)/tcp-echo-server$(EXEEXT)' \
		--readme '$(srcdir)/README' \
		--source '$(srcdir)/tests/install/threaded.c'

# Compare the built libconnect.so with the ABI baseline in abi/ (see
# README, "ABI and versions"): `make abi-check`; `make abi-update` rewrites the
# baseline on purpose.
abi-check: $(lib_LTLIBRARIES)
	$(SHELL) '$(srcdir)/tests/abi-check.sh' '$(top_builddir)/src/.libs/libconnect.so'
abi-update: $(lib_LTLIBRARIES)
	$(SHELL) '$(srcdir)/tests/abi-check.sh' --update '$(top_builddir)/src/.libs/libconnect.so'
.PHONY: abi-check abi-update

EXTRA_DIST += \
	tests/install/installcheck.sh \
	tests/install/threaded.c \
	tests/abi-check.sh \
	abi/README \
	abi/libconnect.so.0.abi \
	abi/libconnect.so.0.constants
