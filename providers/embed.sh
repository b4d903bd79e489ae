#!/bin/sh
# Usage: embed.sh SYMBOL FILE > out.c
# Writes a C file defining `const char SYMBOL[]`: FILE's bytes without its
# full-line comments (lines whose first non-blank character is '#'), NUL
# terminated. Needs only POSIX sed, od and awk (no xxd).
set -eu
sym=$1
file=$2
printf '/* Generated from %s by providers/embed.sh: do not edit. */\n' "$file"
printf 'const char %s[] = {\n' "$sym"
sed '/^[[:space:]]*#/d' "$file" | od -An -v -tx1 |
	awk '{ s = "\t"; for (i = 1; i <= NF; i++) s = s "0x" $i ", "; sub(/ $/, "", s); print s }'
printf '\t0x00\n};\n'
