#!/bin/sh
# Regenerate the libconnect test certificates with GnuTLS certtool.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run from anywhere: the files are written next to this script.  Every key
# is ECDSA P-256 (fast); validity dates come from the *.tmpl templates, so
# the results never depend on the day the script runs (keys and signatures
# do change on each run).  See README for what each file is for.
set -eu

cd "$(dirname "$0")"

CERTTOOL=${CERTTOOL:-certtool}

key() {
	"$CERTTOOL" --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--no-text --outfile "$1"
}

self_signed() { # name
	key "$1-key.pem"
	"$CERTTOOL" --generate-self-signed --load-privkey "$1-key.pem" \
		--template "$1.tmpl" --no-text --outfile "$1.pem"
}

signed() { # name template issuer
	key "$1-key.pem"
	"$CERTTOOL" --generate-certificate --load-privkey "$1-key.pem" \
		--load-ca-certificate "$3.pem" --load-ca-privkey "$3-key.pem" \
		--template "$2.tmpl" --no-text --outfile "$1.pem"
}

self_signed ca
self_signed other-ca
signed server server ca
signed client client ca
signed other-server other-server other-ca
signed expired expired ca
signed notyet notyet ca
signed wrongname wrongname ca

# garbled.pem: server.pem with three lines of its body rot13'ed.  The PEM
# armour and base64 alphabet stay valid; the DER inside does not parse.
upper=ABCDEFGHIJKLMNOPQRSTUVWXYZ
lower=abcdefghijklmnopqrstuvwxyz
rot_upper=NOPQRSTUVWXYZABCDEFGHIJKLM
rot_lower=nopqrstuvwxyzabcdefghijklm
sed "4,6y/$upper$lower/$rot_upper$rot_lower/" server.pem > garbled.pem

# certtool writes keys 0600; these are public test keys, readable by any
# user who builds and tests the tree.
chmod 644 ./*-key.pem

echo "certificates written to $(pwd)"
