#!/usr/bin/env bash
# Writes the committed seed inputs of the fuzz targets (Tests/Fuzz/Corpus/<target>/<name>).
# Each target's file starts with the settings bytes its source describes; run this again after
# changing a seed or a target's input layout. Regression inputs (crashes found and fixed) are kept
# beside the seeds under names starting with "regression-" and are not written by this script.
set -euo pipefail
cd "$(dirname "$0")"

seed() {  # seed TARGET NAME PRINTF-FORMAT...: writes the bytes printf makes of the format
    mkdir -p "$1"
    printf "${@:3}" > "$1/$2"
}

byte() { printf "$(printf '\\%03o' "$1")"; }
u16() { byte $(($1 >> 8)); byte $(($1 & 255)); }
u32() { u16 $(($1 >> 16)); u16 $(($1 & 65535)); }
with_length() {  # with_length u16|u32 FILE: the file's size as a big-endian integer, then the file
    "$1" "$(wc -c < "$2")"
    cat "$2"
}

# A native envelope payload: version 1, flags, hop limit, message id 7, correlation id 0, name,
# operation, and data when the flags say so (operation and data are printf %b strings).
envelope() {  # envelope FLAGS HOP NAME OPERATION [DATA]
    byte 1; byte "$1"; byte "$2"
    u32 0; u32 7; u32 0; u32 0
    printf '%s' "$3" > "$tmp/field" && with_length u16 "$tmp/field"
    printf '%b' "$4" > "$tmp/field" && with_length u16 "$tmp/field"
    if [ "$1" = 1 ]; then printf '%b' "${5-}" > "$tmp/field" && with_length u32 "$tmp/field"; fi
}
frame() { with_length u32 "$1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- FuzzLengthFieldFramer: flags (bits 0-1 field length, bit 2 little endian, bit 3 round trip,
# bits 4-5 scale), maximum, read sizes, stream.
t=FuzzLengthFieldFramer
seed $t four-byte-frames '\x02\x40\x00\x00\x00\x00\x05hello\x00\x00\x00\x00\x00\x00\x00\x03abc'
seed $t four-byte-frames-one-byte-reads '\x02\x40\x01\x00\x00\x00\x05hello\x00\x00\x00\x03abc'
seed $t frame-too-large '\x02\x40\x03\x00\x00\x00\x05hello\x00\x00\x01\x00abc'
seed $t frame-of-the-maximum '\x00\x04\x02\x04abcd\x05abcde'
seed $t two-byte-little-endian '\x05\x10\x07\x03\x00abc\x00\x00\x10\x00'
seed $t eight-byte-huge-length '\x03\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff'
seed $t stops-mid-frame '\x12\x40\x05\x00\x00\x00\x10only-part'
seed $t round-trip '\x0a\x08\x06\x05hello\x00\x03abc\x09too-large'

# --- FuzzNativeEnvelope: flags (bits 0-1 mode, bits 2-3 scale), maximum, read sizes, then bytes.
t=FuzzNativeEnvelope
envelope 1 0 alice '\x00hello' '\x00\x00\x00\x00\x00\x00\x00\x02127.0.0.1:9000' > "$tmp/hello"
envelope 1 3 luda getreq ping > "$tmp/getreq"
envelope 0 0 luda getresp > "$tmp/getresp"
envelope 1 0 alice '\x00hello' '\x00\x00\x00\x00\x00\x00\x00\x00[::1]:9000' > "$tmp/hello6"
mkdir -p $t
{ printf '\x00\x00\x00'; cat "$tmp/hello"; } > $t/hello-payload
{ printf '\x00\x00\x00'; cat "$tmp/getreq"; } > $t/getreq-payload
{ printf '\x00\x00\x00'; cat "$tmp/hello6"; } > $t/hello-ipv6-payload
{ printf '\x05\x40\x03'; frame "$tmp/getreq"; frame "$tmp/getresp"; } > $t/stream
{ printf '\x06\x40\x01'; frame "$tmp/hello"; frame "$tmp/getreq"; } > $t/stream-through-codec
{ printf '\x05\x40\x00'; frame "$tmp/getreq"; printf '\x00\x00\x00\x03\x02\x00\x00'; } > $t/stream-bad-version
{ printf '\x05\x40\x02'; frame "$tmp/getreq"; printf '\x00\x01\x00\x00'; } > $t/stream-frame-too-large
seed $t round-trip '\x07\x40\x04\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04luda\x06getreq\x01\x04ping'

# --- FuzzJSONObjectFramer: flags (bit 0 with the codec, bits 1-2 scale), maximum, read sizes, stream.
t=FuzzJSONObjectFramer
go_connect='{"name":"luda","operation":"connectreq","data":"eyJhZGQiOiIxMjcuMC4wLjE6MTIzNDUiLCJhY2NvdW50IjoxMTkwMH0="}'
seed $t go-connectreq '\x01\x3f\x00%s' "$go_connect"
seed $t go-objects-with-newlines '\x03\x3f\x02%s\n{"name":"luda","operation":"getreq","data":null}\n' "$go_connect"
seed $t strings-and-nesting '\x00\xff\x04{"a":"}\\"{[","b":[1,{"c":[]},"\\\\"]}  {}'
seed $t object-too-large '\x00\x07\x01{"name":"a-name-too-long"}'
seed $t mismatched-brackets '\x00\xff\x00{"a":[1}]'
seed $t not-an-object '\x00\xff\x00 \r\n\t[1]'
seed $t unfinished-object '\x02\x3f\x05{"name":"lu'
seed $t not-an-envelope '\x01\x3f\x03{"name":5}{"name":"x","data":"!!"}{"operation":"ok"}'

# --- FuzzJSONEnvelope: byte 0 (0 = decode, 1 = build), then the JSON or the fields.
t=FuzzJSONEnvelope
seed $t go-connectreq '\x00%s' "$go_connect"
seed $t go-getreq-null-data '\x00{"name":"luda","operation":"getreq","data":null}'
seed $t go-escapes '\x00{"name":"\\u003cl\\u00fcda\\u003e\\n","operation":"get\\/req","data":"cGluZw=="}'
seed $t case-folding-and-extras '\x00 {"NAME":"a","Operation":"b","data":[1,2,255,null],"extra":{"k":[true,false,null,-1.5e3]},"name":"c"} '
seed $t surrogates '\x00{"name":"\\ud83d\\ude00 \\ud800","operation":"x","data":"\\r\\naGk=\\n"}'
seed $t top-level-null '\x00null'
seed $t build '\x01\x04luda\x06getreq\x01\x00\x01\x02<>&\xe2\x80\xa8'

# --- FuzzBase64: the bytes to decode and encode.
t=FuzzBase64
seed $t padded-one '%s' 'aGk='
seed $t padded-two '%s' 'cGluZw=='
seed $t unpadded-group '%s' 'AAEC/+/+'
seed $t line-breaks '\r\naGVs\nbG8=\r\n'
seed $t padding-split-by-line-break '%s\n%s' 'aG=' '='
seed $t invalid '%s' 'a-_b'
seed $t greeting '%s' 'eyJhZGQiOiIxMjcuMC4wLjE6MTIzNDUiLCJhY2NvdW50IjoxMTkwMH0='

# --- FuzzGreeting: byte 0 (0 = decode, 1 = build), then the JSON or the account and address.
t=FuzzGreeting
seed $t go-greeting '\x00{"add":"127.0.0.1:12345","account":11900}'
seed $t keys-any-case-and-order '\x00 {"ACCOUNT":-9223372036854775808,"Add":"[::1]:9000","x":[{}]} '
seed $t account-too-large '\x00{"add":"a","account":9223372036854775808}'
seed $t account-not-an-integer '\x00{"add":"a","account":1e3}'
seed $t null '\x00null'
seed $t build '\x01\x7c\x2e\x00\x00\x00\x00\x00\x00[fe80::1%%lo]:80'

# --- FuzzSocketAddress: 8 bytes of port (little endian), then the text.
t=FuzzSocketAddress
port80='\x50\x00\x00\x00\x00\x00\x00\x00'
seed $t ipv4 "$port80%s" '127.0.0.1:80'
seed $t ipv6 "$port80%s" '[::1]:9000'
seed $t ipv6-zone-name "$port80%s" '[fe80::1%lo]:80'
seed $t ipv6-zone-index "$port80%s" '[fe80::1%2]:65535'
seed $t ipv4-mapped "$port80%s" '[::ffff:1.2.3.4]:0'
seed $t bare-ipv6-with-port "$port80%s" '::1:80'
seed $t port-out-of-range '\xff\xff\xff\xff\xff\xff\xff\x7f%s' 'host:70000'
seed $t negative-port "$port80%s" '1.2.3.4:-1'
seed $t name "$port80%s" 'localhost:8080'
seed $t unclosed-bracket "$port80%s" '[::1:80'

# --- FuzzByteBuffer: shape (bit 7 slice, bits 0-6 prefix), length, bytes, then operations.
t=FuzzByteBuffer
# Reads every integer width in both byte orders, strings (valid and not), slices and bytes.
seed $t integers '\x83\x10\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x00\x00\x20\x01\x40\x00\x60\x01\x01\x00\x00\x61\x01\x05\xff'
seed $t strings '\x00\x0ahi \xc3\xa9\xff\xfe!!!\x02\x00\x03\x04\x00\x02\x05\x00\x00\x02\x03\x00\x10'
seed $t slices '\x85\x08abcdefgh\x06\x00\x04\x01\x07\x00\x01\x00\x02\x08\x00\x02\x09\x05\x00\x00\x03'
seed $t extremes '\x00\x04abcd\x01\x00\x04\x00\x03\x05\x00\x03\x07\x00\x06\x00\x07\x00\x06\x00\x03\x04\x00\x05\x00'
seed $t writes-and-copies '\x00\x02ab\x0f\x0a\x00\x01\x02\x03\x04\x05\x06\x07\x08\x2a\x01\x11\x22\x0b\x03xyz\x0c\x02\x00\x01\x0d\x0f\x0e\x02\x08\x00\x20'
