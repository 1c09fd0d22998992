/*
 * Addresses: "host:port" / "[ipv6]:port" parsing, resolution and
 * formatting.
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
