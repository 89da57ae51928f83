#!/bin/sh
# Makes a private CA and the certificates of the compose stack's TLS-only Redis in DIR (a volume
# only Redis and the programs mount), unless they are already there:
#   sh deploy/tls/make-certs.sh DIR
# ca.crt (the CA every client trusts), redis.crt/.key (the server, for the host name `redis`),
# client.crt/.key (the client certificate every program and vMCP presents: Redis requires one).
# The CA's key is deleted once it has signed: nothing else can be issued under it. In production
# the certificates come from your own CA (cert-manager, Vault …).
set -eu
dir=${1:?usage: make-certs.sh DIR}
[ -f "$dir/ca.crt" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 825 -subj "/CN=vmcp-keepalive compose CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
sign() {
  printf '%s\n' "$3" > "$1.ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 825 -extfile "$1.ext" 2>/dev/null
}
sign redis "/CN=redis" "subjectAltName=DNS:redis,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
sign client "/CN=vmcp-keepalive" "extendedKeyUsage=clientAuth"
openssl verify -CAfile ca.crt redis.crt client.crt >/dev/null
# Readable by the Redis and Node users of their images (the volume is private to the stack).
chmod 644 ca.crt redis.crt redis.key client.crt client.key
cp ca.crt redis.crt redis.key client.crt client.key "$dir/"
