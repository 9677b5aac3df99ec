/*
 * CSodium — exposes libsodium to Swift for exactly one purpose: Ed25519 signature
 * verification (crypto_sign_verify_detached), which measured faster here than OpenSSL's
 * EVP Ed25519 path (see `swift run -c release jose-bench`) — and, for the development issuer
 * only (`gatehouse dev-issuer` / `mint`), Ed25519 key generation and signing.
 */
#ifndef GATEHOUSE_CSODIUM_SHIM_H
#define GATEHOUSE_CSODIUM_SHIM_H
#include <sodium.h>
#endif
