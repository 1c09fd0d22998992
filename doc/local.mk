# doc/local.mk: the manual pages, included from Makefile.am.
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The pages are mdoc(7) written by hand: man(1) renders them as they are,
# so neither building nor installing needs a documentation tool.  A page
# documenting several functions is one file; each other name it documents
# is a one-line ".so man3/PAGE.3" file, so that `man connect_X` works for
# every function and type.  tests/check_man.sh (run by make check) fails
# when an exported function, a public type or constant has no page: add
# the page or link to doc/man and list it below.

# Section 1: the example programs (installed in $(pkglibexecdir)).
dist_man1_MANS = \
	doc/man/mt-echo-server.1 \
	doc/man/tcp-client-blaster.1 \
	doc/man/tcp-client.1 \
	doc/man/tcp-echo-server.1 \
	doc/man/tls-client.1 \
	doc/man/tls-echo-server.1
# The SCTP examples' pages, when they are built.
if HAVE_USRSCTP
dist_man1_MANS += \
	doc/man/dtls-sctp-client.1 \
	doc/man/dtls-sctp-echo-server.1 \
	doc/man/sctp-client.1 \
	doc/man/sctp-echo-server.1
endif
EXTRA_DIST += \
	doc/man/dtls-sctp-client.1 \
	doc/man/dtls-sctp-echo-server.1 \
	doc/man/sctp-client.1 \
	doc/man/sctp-echo-server.1

# Section 1, not installed: the tools for working on libconnect
# (tools/local.mk), which are not installed either.
EXTRA_DIST += doc/man/connect-load.1

# Section 3: pages.
dist_man3_MANS = \
	doc/man/connect_accept.3 \
	doc/man/connect_close.3 \
	doc/man/connect_conn_error.3 \
	doc/man/connect_conn_fd.3 \
	doc/man/connect_conn_local_addr.3 \
	doc/man/connect_conn_peer_identity.3 \
	doc/man/connect_conn_set_user.3 \
	doc/man/connect_conn_stat.3 \
	doc/man/connect_datagram_new.3 \
	doc/man/connect_dial.3 \
	doc/man/connect_inbox_new.3 \
	doc/man/connect_listen.3 \
	doc/man/connect_listener_close.3 \
	doc/man/connect_listener_port.3 \
	doc/man/connect_opt.3 \
	doc/man/connect_opts_new.3 \
	doc/man/connect_opts_set_tls.3 \
	doc/man/connect_recv.3 \
	doc/man/connect_send.3 \
	doc/man/connect_set_logger.3 \
	doc/man/connect_set_recv_memory_limit.3 \
	doc/man/connect_strerror.3 \
	doc/man/connect_tls_client.3 \
	doc/man/connect_tls_config_ca_file.3 \
	doc/man/connect_tls_config_cert_file.3 \
	doc/man/connect_tls_config_client_auth.3 \
	doc/man/connect_tls_config_new.3 \
	doc/man/connect_tls_config_priority.3 \
	doc/man/connect_tls_listen.3 \
	doc/man/connect_version_string.3

# Section 3: ".so" links to the pages above, one per other name.
dist_man3_MANS += \
	doc/man/connect_conn_attach.3 \
	doc/man/connect_inbox.3 \
	doc/man/connect_inbox_close.3 \
	doc/man/connect_inbox_fd.3 \
	doc/man/connect_inbox_pop.3 \
	doc/man/connect_inbox_pop_wait.3 \
	doc/man/connect_inbox_stat.3 \
	doc/man/connect_item.3 \
	doc/man/connect_item_done.3 \
	doc/man/connect_item_kind.3 \
	doc/man/connect_listener_set_inbox.3 \
	doc/man/connect_accept_wait.3 \
	doc/man/connect_conn.3 \
	doc/man/connect_conn_opt.3 \
	doc/man/connect_conn_peer_addr.3 \
	doc/man/connect_conn_send_fd.3 \
	doc/man/connect_conn_user.3 \
	doc/man/connect_datagram.3 \
	doc/man/connect_datagram_alloc.3 \
	doc/man/connect_datagram_data.3 \
	doc/man/connect_datagram_free.3 \
	doc/man/connect_datagram_set_tag.3 \
	doc/man/connect_datagram_size.3 \
	doc/man/connect_datagram_tag.3 \
	doc/man/connect_datagram_version.3 \
	doc/man/connect_err.3 \
	doc/man/connect_err_name.3 \
	doc/man/connect_listener.3 \
	doc/man/connect_listener_addr.3 \
	doc/man/connect_listener_fd.3 \
	doc/man/connect_listener_tls_failures.3 \
	doc/man/connect_log_fn.3 \
	doc/man/connect_log_level.3 \
	doc/man/connect_opts.3 \
	doc/man/connect_opts_free.3 \
	doc/man/connect_opts_get.3 \
	doc/man/connect_opts_set.3 \
	doc/man/connect_opts_set_server_name.3 \
	doc/man/connect_peer_info.3 \
	doc/man/connect_recv_memory_used.3 \
	doc/man/connect_recv_wait.3 \
	doc/man/connect_send_wait.3 \
	doc/man/connect_stat.3 \
	doc/man/connect_tcp_client.3 \
	doc/man/connect_tcp_listen.3 \
	doc/man/connect_tls_client_auth.3 \
	doc/man/connect_tls_config.3 \
	doc/man/connect_tls_config_ca_mem.3 \
	doc/man/connect_tls_config_ca_system.3 \
	doc/man/connect_tls_config_cert_mem.3 \
	doc/man/connect_tls_config_free.3 \
	doc/man/connect_tls_config_handshake_timeout.3 \
	doc/man/connect_tls_role.3

# Section 7: the overview.
dist_man7_MANS = doc/man/libconnect.7

TESTS += tests/check_man.sh
EXTRA_DIST += tests/check_man.sh
