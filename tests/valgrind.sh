#!/bin/sh
# Run one test program under valgrind memcheck (LOG_COMPILER of the
# valgrind stage of .ci/run, or by hand:
#     make check LOG_COMPILER=$PWD/tests/valgrind.sh CK_TIMEOUT_MULTIPLIER=10
# ).  Any invalid access, or any definite or indirect leak, in the program
# or in the test processes Check forks, fails it (exit 99).
#
# SPDX-License-Identifier: LGPL-2.1-or-later
top=${abs_top_builddir:-.}
# The tests that move large volumes move less (the same checks).
CONNECT_TEST_LIGHT=1
export CONNECT_TEST_LIGHT
exec "$top/libtool" --mode=execute valgrind --quiet --error-exitcode=99 \
	--leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --num-callers=30 \
	--suppressions="${abs_top_srcdir:-.}/tests/valgrind.supp" "$@"
