/*
 * SHA-256 (OpenSSL's libcrypto) and the salted value hash that lets plumb
 * compare secrets without moving them: observation computes, on the host,
 * sha256(salt ‖ value) for every env value and env-file line; the desired
 * side computes the same locally. The salt is random per run (hex), so a
 * hash seen in one run's output says nothing in another run.
 */
#ifndef PLUMB_HASH_H
#define PLUMB_HASH_H

#include <stddef.h>

#define HASH_HEX_LEN 64

/* Lowercase hex SHA-256 of data into out (65 bytes with the NUL). */
void hash_sha256_hex(const void *data, size_t len, char out[HASH_HEX_LEN + 1]);
/* hash_sha256_hex(salt ‖ value) — what the host computes with `printf '%s%s' "$salt" "$value" | sha256sum`. */
void hash_salted(const char *salt, const char *value, size_t value_len, char out[HASH_HEX_LEN + 1]);
/* A fresh random salt: 32 lowercase hex characters from getrandom(2). */
void hash_salt_new(char out[33]);

#endif
