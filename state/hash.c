#include "state/hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void to_hex(const unsigned char *md, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
}

void hash_sha256_hex(const void *data, size_t len, char out[HASH_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		fputs("plumb: SHA-256 unavailable\n", stderr);
		abort();
	}
	to_hex(md, 32, out);
}

void hash_salted(const char *salt, const char *value, size_t value_len, char out[HASH_HEX_LEN + 1])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt, strlen(salt)) != 1 ||
	    EVP_DigestUpdate(ctx, value, value_len) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
		fputs("plumb: SHA-256 unavailable\n", stderr);
		abort();
	}
	EVP_MD_CTX_free(ctx);
	to_hex(md, 32, out);
}

void hash_salt_new(char out[33])
{
	unsigned char raw[16];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n <= 0) {
			fputs("plumb: no randomness for the observation salt\n", stderr);
			abort();
		}
		got += (size_t)n;
	}
	to_hex(raw, sizeof(raw), out);
}
