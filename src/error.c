/*
 * Error codes: strings and names from the one list in connect.h, and the
 * mapping of errno values onto them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <errno.h>

const char *connect_strerror(int err)
{
	switch (err) {
#define CN_STR_(name, val, text)                                               \
	case (val):                                                            \
		return text;
		CONNECT_ERRNO_MAP(CN_STR_)
#undef CN_STR_
	}
	return "unknown error code";
}

const char *connect_err_name(int err)
{
	switch (err) {
#define CN_NAME_(name, val, text)                                              \
	case (val):                                                            \
		return "CONNECT_" #name;
		CONNECT_ERRNO_MAP(CN_NAME_)
#undef CN_NAME_
	}
	return "CONNECT_EUNKNOWN";
}

const char *connect_version_string(void)
{
	return CONNECT_VERSION;
}

int cn_err_from_errno(int e)
{
	switch (e) {
	case 0:
		return CONNECT_OK;
	case ENOMEM:
	case ENOBUFS:
		return CONNECT_ENOMEM;
	case EAGAIN:
		return CONNECT_EAGAIN;
	case ETIMEDOUT:
		return CONNECT_ETIMEDOUT;
	case ECONNREFUSED:
		return CONNECT_ECONNREFUSED;
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ENOTCONN:
	case ESHUTDOWN:
		return CONNECT_ECONNRESET;
	case EADDRINUSE:
		return CONNECT_EADDRINUSE;
	case EADDRNOTAVAIL:
		return CONNECT_EADDRNOTAVAIL;
	case EAFNOSUPPORT:
		return CONNECT_EADDR;
	case EINVAL:
		return CONNECT_EINVAL;
	case EIO:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
		return CONNECT_EIO;
	default:
		return CONNECT_ESYSTEM;
	}
}
