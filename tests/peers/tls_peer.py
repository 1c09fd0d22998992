#!/usr/bin/env python3
# An independent TLS peer for the libconnect tests, built on Python's ssl
# module (OpenSSL), speaking the libconnect / connect-rs frame format:
#
#     u32 size (= 4 + payload length) | u16 version (1) | u16 tag | payload
#
# all big-endian.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Modes:
#   tls_peer.py server --cert C --key K [--ca CA] [--optional]
#       Binds 127.0.0.1:0 (or [::1]:0 with --ipv6), prints "PORT <n>" as its
#       first stdout line, accepts ONE client, echoes every frame back with
#       the same tag until the client ends the stream, answers the client's
#       close_notify with its own (TLS unwrap) and exits 0.  With --ca the
#       client must present a certificate issued by CA (--optional: may).
#   tls_peer.py client --port P --ca CA [--name localhost] [--count N]
#                      [--cert C --key K] [--keyupdate] [--host H]
#       Connects, sends N frames (tag i % 65536, payload "msg-<i>"), reads
#       the N echoes and checks them, sends close_notify, exits 0.  With
#       --keyupdate it sends a TLS 1.3 KeyUpdate (update_requested) after
#       half of the frames.
#
# Exit status: 0 success, 1 failure (message on stderr), 2 usage, 77 the
# requested feature is unavailable here (--keyupdate without a usable
# OpenSSL handle).  Every socket operation times out after --timeout
# seconds (default 10).

import argparse
import ctypes
import socket
import ssl
import struct
import sys

MAX_PAYLOAD = 100_000_000
HDR = struct.Struct(">IHH")
# Frames in flight before the client waits for echoes: keeps both
# directions far below the socket buffers, so nothing can deadlock.
WINDOW = 128


class PeerError(Exception):
    pass


def log(msg):
    print(f"tls_peer: {msg}", file=sys.stderr, flush=True)


def recv_exact(sock, n, what):
    """n bytes, b'' on a clean end of stream before the first byte."""
    chunks = []
    have = 0
    while have < n:
        b = sock.recv(n - have)
        if not b:
            if have == 0:
                return b""
            raise PeerError(f"truncated {what}: {have} of {n} bytes")
        chunks.append(b)
        have += len(b)
    return b"".join(chunks)


def read_frame(sock):
    """(version, tag, payload), or None at a clean end of stream."""
    hdr = recv_exact(sock, HDR.size, "frame header")
    if not hdr:
        return None
    size, version, tag = HDR.unpack(hdr)
    if size < 5 or size > 4 + MAX_PAYLOAD:
        raise PeerError(f"bad frame size field {size}")
    payload = recv_exact(sock, size - 4, "frame payload")
    if not payload:
        raise PeerError("truncated frame: stream ended after the header")
    return version, tag, payload


def frame(tag, payload, version=1):
    return HDR.pack(4 + len(payload), version, tag) + payload


def close_notify(sock):
    """Send our close_notify (and take the peer's if it comes)."""
    try:
        sock.unwrap()
    except (ssl.SSLError, OSError) as e:
        # The peer may already have closed its socket: our close_notify
        # was still sent, or the peer did not wait for it.
        log(f"unwrap: {e}")


# ---- TLS 1.3 KeyUpdate through OpenSSL ------------------------------------
#
# The ssl module has no KeyUpdate API.  OpenSSL's SSL_key_update() is called
# through ctypes on the SSL* that CPython's _ssl._SSLSocket keeps right after
# its weak reference to the socket:
#     PyObject_HEAD; PyObject *Socket; SSL *ssl; PySSLContext *ctx; ...
# The layout is checked before use: the pointer after `ssl` must be the
# context object, and SSL_get_fd() must return the socket's descriptor.

SSL_KEY_UPDATE_REQUESTED = 1


def libssl():
    path = None
    with open("/proc/self/maps") as f:
        for line in f:
            if "/libssl.so" in line:
                path = line.split()[-1]
                break
    if path is None:
        raise PeerError("libssl is not loaded (static OpenSSL?)")
    lib = ctypes.CDLL(path)
    lib.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.SSL_key_update.restype = ctypes.c_int
    lib.SSL_get_fd.argtypes = [ctypes.c_void_p]
    lib.SSL_get_fd.restype = ctypes.c_int
    return lib


def ssl_pointer(tls_sock):
    obj = tls_sock._sslobj
    ptr = ctypes.c_void_p.from_address
    base = id(obj) + object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    ssl_ptr = ptr(base).value
    ctx_ptr = ptr(base + ctypes.sizeof(ctypes.c_void_p)).value
    if not ssl_ptr or ctx_ptr != id(obj.context):
        raise PeerError("unexpected _ssl object layout")
    return ssl_ptr


def key_update(tls_sock):
    if tls_sock.version() != "TLSv1.3":
        raise PeerError(f"KeyUpdate needs TLS 1.3, have {tls_sock.version()}")
    lib = libssl()
    handle = ssl_pointer(tls_sock)
    if lib.SSL_get_fd(handle) != tls_sock.fileno():
        raise PeerError("SSL* does not belong to this socket")
    if lib.SSL_key_update(handle, SSL_KEY_UPDATE_REQUESTED) != 1:
        raise PeerError("SSL_key_update failed")
    # OpenSSL sends the KeyUpdate with the next record we write.


# ---- modes -----------------------------------------------------------------

def run_server(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.ca:
        ctx.load_verify_locations(args.ca)
        ctx.verify_mode = (ssl.CERT_OPTIONAL if args.optional
                           else ssl.CERT_REQUIRED)
    family = socket.AF_INET6 if args.ipv6 else socket.AF_INET
    host = "::1" if args.ipv6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        ls.bind((host, 0))
        ls.listen(1)
        ls.settimeout(args.timeout)
        print(f"PORT {ls.getsockname()[1]}", flush=True)
        conn, _ = ls.accept()
    conn.settimeout(args.timeout)
    with ctx.wrap_socket(conn, server_side=True,
                         suppress_ragged_eofs=False) as tls:
        frames = 0
        try:
            while True:
                f = read_frame(tls)
                if f is None:
                    break
                version, tag, payload = f
                tls.sendall(frame(tag, payload))
                frames += 1
        except ssl.SSLEOFError:
            raise PeerError("peer closed the stream without close_notify")
        log(f"server: echoed {frames} frames, {tls.version()}")
        close_notify(tls)
    return 0


def run_client(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    sock = socket.create_connection((args.host, args.port),
                                    timeout=args.timeout)
    sock.settimeout(args.timeout)
    with ctx.wrap_socket(sock, server_hostname=args.name,
                         suppress_ragged_eofs=False) as tls:
        n = args.count
        sent = received = 0
        updated = not args.keyupdate

        def check_echo():
            nonlocal received
            f = read_frame(tls)
            if f is None:
                raise PeerError(f"end of stream after {received} echoes "
                                f"of {n}")
            version, tag, payload = f
            want = f"msg-{received}".encode()
            if tag != received % 65536 or payload != want:
                raise PeerError(f"echo {received}: got tag {tag} payload "
                                f"{payload[:40]!r}, want tag "
                                f"{received % 65536} payload {want!r}")
            received += 1

        while received < n:
            if not updated and sent >= n // 2:
                # With up to WINDOW echoes still in flight: the peer must
                # switch keys while both directions are busy.
                key_update(tls)
                updated = True
            batch = []
            while sent < n and sent - received < WINDOW and \
                    (updated or sent < n // 2):
                batch.append(frame(sent % 65536, f"msg-{sent}".encode()))
                sent += 1
            if batch:
                tls.sendall(b"".join(batch))
            if received < sent:
                check_echo()
        log(f"client: {n} echoes checked, {tls.version()}"
            f"{', key update sent' if args.keyupdate else ''}")
        close_notify(tls)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--ca")
    s.add_argument("--optional", action="store_true",
                   help="with --ca: client certificate optional")
    s.add_argument("--ipv6", action="store_true")
    s.add_argument("--timeout", type=float, default=10.0)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--ca", required=True)
    c.add_argument("--name", default="localhost")
    c.add_argument("--count", type=int, default=100)
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--keyupdate", action="store_true")
    c.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    if args.mode == "client" and bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    try:
        if args.mode == "server":
            return run_server(args)
        return run_client(args)
    except PeerError as e:
        if str(e).startswith(("unexpected _ssl", "libssl is not",
                              "SSL* does not")):
            log(f"key update unavailable: {e}")
            return 77
        log(f"FAIL: {e}")
        return 1
    except (OSError, ssl.SSLError) as e:
        log(f"FAIL: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
