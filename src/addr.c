/*
 * Addresses: "host:port" / "[ipv6]:port" parsing, resolution, formatting,
 * and dialing a TCP connection with a timeout.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "connect_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int cn_addr_split(const char *addr, char *host, size_t hostlen, char *port,
		  size_t portlen)
{
	const char *h, *p, *colon;
	size_t hl, pl;
	unsigned long v = 0;

	if (!addr)
		return CONNECT_EINVAL;
	if (addr[0] == '[') {
		/* "[v6]:port": the brackets make the last colon unambiguous */
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return CONNECT_EADDR;
		h = addr + 1;
		hl = (size_t)(close - h);
		p = close + 2;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return CONNECT_EADDR;
		h = addr;
		hl = (size_t)(colon - addr);
		p = colon + 1;
		/* an IPv6 literal needs brackets */
		if (memchr(h, ':', hl))
			return CONNECT_EADDR;
	}
	pl = strlen(p);
	if (hl == 0 || hl >= hostlen || pl == 0 || pl > 5 || pl >= portlen)
		return CONNECT_EADDR;
	for (size_t i = 0; i < pl; i++) {
		if (p[i] < '0' || p[i] > '9')
			return CONNECT_EADDR;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return CONNECT_EADDR;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, p, pl);
	port[pl] = '\0';
	return CONNECT_OK;
}

static int gai_to_err(int rc)
{
	switch (rc) {
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_FAIL:
	case EAI_AGAIN:
	case EAI_ADDRFAMILY:
		return CONNECT_ENOHOST;
	case EAI_MEMORY:
		return CONNECT_ENOMEM;
	case EAI_SYSTEM:
		return cn_err_from_errno(errno);
	default:
		return CONNECT_EADDR;
	}
}

int cn_addr_resolve(const char *addr, bool passive, struct addrinfo **res)
{
	char host[256], port[8];
	struct addrinfo hints;
	int rc;

	rc = cn_addr_split(addr, host, sizeof(host), port, sizeof(port));
	if (rc)
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	rc = getaddrinfo(host, port, &hints, res);
	return rc ? gai_to_err(rc) : CONNECT_OK;
}

void cn_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "(unknown address family %d)",
			 sa->sa_family);
	}
}

/* One connect attempt, bounded by deadline.  Returns a CONNECT code. */
static int dial_one(const struct addrinfo *ai, int64_t deadline, int *fdp)
{
	int fd, err = 0, rc;
	socklen_t elen = sizeof(err);
	struct pollfd pfd;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return cn_err_from_errno(errno);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do {
			rc = poll(&pfd, 1, cn_remaining(deadline));
		} while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			close(fd);
			return CONNECT_ETIMEDOUT;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					 &elen) < 0) {
			err = errno;
			goto fail;
		}
		if (err)
			goto fail;
	}
	/* The transports do blocking I/O on the socket. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		err = errno;
		goto fail;
	}
	*fdp = fd;
	return CONNECT_OK;
fail:
	close(fd);
	errno = err;
	return cn_err_from_errno(err);
}

int cn_tcp_dial(const char *addr, int timeout_ms, int *fdp, char *reason,
		size_t reasonlen)
{
	struct addrinfo *res, *ai;
	int64_t deadline = cn_deadline(timeout_ms);
	int rc, first = CONNECT_OK;

	rc = cn_addr_resolve(addr, false, &res);
	if (rc) {
		snprintf(reason, reasonlen, "%s: %s", addr,
			 connect_strerror(rc));
		return rc;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		char text[CN_ADDRSTRLEN];

		rc = dial_one(ai, deadline, fdp);
		if (rc == CONNECT_OK)
			break;
		cn_addr_format(ai->ai_addr, text, sizeof(text));
		snprintf(reason, reasonlen, "connect to %s: %s", text,
			 connect_strerror(rc));
		if (first == CONNECT_OK)
			first = rc;
		if (cn_remaining(deadline) == 0) {
			rc = CONNECT_ETIMEDOUT;
			break;
		}
	}
	freeaddrinfo(res);
	if (rc != CONNECT_OK && rc != CONNECT_ETIMEDOUT)
		rc = first;
	return rc;
}
