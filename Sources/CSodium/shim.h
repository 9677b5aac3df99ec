/*
 * CSodium — exposes libsodium to Swift for exactly one purpose: Ed25519 signature
 * verification (crypto_sign_verify_detached), which measured faster here than OpenSSL's
 * EVP Ed25519 path (see `swift run -c release jose-bench`). Nothing else is used.
 */
#ifndef GATEHOUSE_CSODIUM_SHIM_H
#define GATEHOUSE_CSODIUM_SHIM_H
#include <sodium.h>
#endif
