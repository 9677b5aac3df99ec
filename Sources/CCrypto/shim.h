/*
 * CCrypto — the only door from Swift into OpenSSL 3's libcrypto.
 *
 * Why it exists: Swift cannot call C macros, and building an EVP_PKEY from raw JWK
 * parameters (RFC 7517/7518 §6) takes a handful of OSSL_PARAM_BLD / EVP_PKEY_fromdata
 * calls with string-macro parameter names. Keeping those few steps here as thin
 * `static inline` wrappers leaves the Swift side (Sources/JOSE/OpenSSLKey.swift) with
 * one call per operation and no knowledge of OpenSSL's parameter names.
 *
 * Rules for this file: no state, no allocation that outlives a call except the returned
 * EVP_PKEY (owned by the caller, freed with EVP_PKEY_free), no policy decisions (sizes,
 * curves and algorithms are validated in Swift before we get here).
 */
#ifndef GATEHOUSE_CCRYPTO_SHIM_H
#define GATEHOUSE_CCRYPTO_SHIM_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

/* Re-exported constants (macros Swift may not import reliably). */
static const int JOSE_EVP_PKEY_ED25519 = EVP_PKEY_ED25519;
static const int JOSE_RSA_PKCS1_PSS_PADDING = RSA_PKCS1_PSS_PADDING;

/* Turns finished params into an EVP_PKEY of the given keymgmt ("EC", "RSA"); `selection` is
   EVP_PKEY_PUBLIC_KEY or (for the development issuer's signing keys) EVP_PKEY_KEYPAIR. */
static inline EVP_PKEY *jose_pkey_fromdata_selection(const char *type, OSSL_PARAM *params, int selection) {
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (pkey == NULL) ERR_clear_error();
    return pkey;
}

/* Turns finished params into a public EVP_PKEY of the given keymgmt ("EC", "RSA"). */
static inline EVP_PKEY *jose_pkey_fromdata(const char *type, OSSL_PARAM *params) {
    return jose_pkey_fromdata_selection(type, params, EVP_PKEY_PUBLIC_KEY);
}

/* EC public key from a group name ("P-256", "P-521") and an uncompressed SEC1 point 04‖x‖y. */
static inline EVP_PKEY *jose_ec_public_key(const char *group, const unsigned char *point, size_t len) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, len) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        pkey = jose_pkey_fromdata("EC", params);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* RSA public key from big-endian n and e. */
static inline EVP_PKEY *jose_rsa_public_key(const unsigned char *n, size_t nlen,
                                            const unsigned char *e, size_t elen) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL && bn_n != NULL && bn_e != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        pkey = jose_pkey_fromdata("RSA", params);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

/* Ed25519 public key from its 32 raw bytes (RFC 8037 §2). */
static inline EVP_PKEY *jose_ed25519_public_key(const unsigned char *x, size_t len) {
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, len);
}

/* Full public-key validation (for EC: on the curve, not infinity, right order). 1 = ok. */
static inline int jose_pkey_public_check(EVP_PKEY *pkey) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) ERR_clear_error();
    return ok;
}

/*
 * JWS ECDSA signatures are raw r‖s (RFC 7518 §3.4); OpenSSL verifies DER ECDSA-Sig-Value.
 * Writes the DER form into `out` and returns its length, or -1.
 */
static inline int jose_ecdsa_raw_to_der(const unsigned char *rs, size_t half,
                                        unsigned char *out, size_t cap) {
    int len = -1;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(rs + half, (int)half, NULL);
    if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* now owned by sig */
        int need = i2d_ECDSA_SIG(sig, NULL);
        if (need > 0 && (size_t)need <= cap) {
            unsigned char *p = out;
            len = i2d_ECDSA_SIG(sig, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

/* RSASSA-PSS with MGF1 and a salt of `saltlen` bytes when saltlen >= 0 (RFC 7518 §3.5 uses the
   hash length); nothing to do otherwise. 1 = ok. */
static inline int jose_select_pss(EVP_PKEY_CTX *pctx, int saltlen) {
    return saltlen < 0 || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen) == 1);
}

/*
 * One-shot EVP_DigestVerify with a fresh EVP_MD_CTX (never shared between threads).
 * `md` NULL for Ed25519; `pss_saltlen` >= 0 selects RSASSA-PSS with MGF1(md) and that salt.
 * Returns 1 only for a valid signature.
 */
static inline int jose_digest_verify(EVP_PKEY *pkey, const EVP_MD *md, int pss_saltlen,
                                     const unsigned char *sig, size_t siglen,
                                     const unsigned char *msg, size_t msglen) {
    int ok = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1 &&
        jose_select_pss(pctx, pss_saltlen)) {
        ok = EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) ERR_clear_error(); /* keep this thread's error queue empty after a rejection */
    return ok;
}

/* SHA-256 of `len` bytes into `out` (32 bytes). 1 = ok. */
static inline int jose_sha256(const void *data, size_t len, unsigned char *out, const EVP_MD *md) {
    unsigned int outlen = 0;
    return EVP_Digest(data, len, out, &outlen, md, NULL) == 1 && outlen == 32;
}

/*
 * ---- Signing: used by the development issuer only (Sources/GatehouseDevIssuer) ----
 * gatehouse itself never holds a private key. These wrappers create, export, import and
 * use the issuer's EC and RSA keys; the returned EVP_PKEY is owned by the caller.
 */

/* A new EC key on `group` ("P-256", "P-521"). */
static inline EVP_PKEY *jose_generate_ec(const char *group) {
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    if (pkey == NULL) ERR_clear_error();
    return pkey;
}

/* A new RSA key of `bits` bits (public exponent 65537). */
static inline EVP_PKEY *jose_generate_rsa(unsigned int bits) {
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (pkey == NULL) ERR_clear_error();
    return pkey;
}

/* The JWK members of an RSA private key, in RFC 7518 §6.3 order: n, e, d, p, q, dp, dq, qi. */
static const char *const JOSE_RSA_MEMBER_PARAMS[8] = {
    OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};

/* One big-endian number of a key into `out`: RSA member `index` (0-7, order above), or the
   EC private scalar when index is -1, left-padded with zeros to `pad` bytes if pad > 0.
   Returns the length written, or -1. */
static inline int jose_pkey_number(const EVP_PKEY *pkey, int index, unsigned char *out, size_t cap, int pad) {
    BIGNUM *bn = NULL;
    int len = -1;
    const char *name = index < 0 ? OSSL_PKEY_PARAM_PRIV_KEY : (index < 8 ? JOSE_RSA_MEMBER_PARAMS[index] : NULL);
    if (name != NULL && EVP_PKEY_get_bn_param(pkey, name, &bn) == 1) {
        int need = BN_num_bytes(bn);
        if (pad > 0) {
            if ((size_t)pad <= cap && need <= pad) len = BN_bn2binpad(bn, out, pad);
        } else if ((size_t)need <= cap) {
            len = BN_bn2bin(bn, out);
        }
    }
    BN_clear_free(bn);
    if (len < 0) ERR_clear_error();
    return len;
}

/* An EC key's public point, SEC1 uncompressed 04‖x‖y. Returns its length, or -1. */
static inline int jose_pkey_ec_point(const EVP_PKEY *pkey, unsigned char *out, size_t cap) {
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, out, cap, &len) != 1) {
        ERR_clear_error();
        return -1;
    }
    return (int)len;
}

/* EC key pair from a group name, the public point 04‖x‖y and the private scalar d. */
static inline EVP_PKEY *jose_ec_private_key(const char *group, const unsigned char *point, size_t pointlen,
                                            const unsigned char *d, size_t dlen) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bn_d = BN_bin2bn(d, (int)dlen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL && bn_d != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, pointlen) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn_d) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        pkey = jose_pkey_fromdata_selection("EC", params, EVP_PKEY_KEYPAIR);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn_d);
    return pkey;
}

/* RSA key pair from the eight big-endian JWK members (order of JOSE_RSA_MEMBER_PARAMS). */
static inline EVP_PKEY *jose_rsa_private_key(const unsigned char *const parts[8], const size_t lens[8]) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *numbers[8] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    int ok = bld != NULL;
    for (int i = 0; ok && i < 8; i++) {
        numbers[i] = BN_bin2bn(parts[i], (int)lens[i], NULL);
        ok = numbers[i] != NULL && OSSL_PARAM_BLD_push_BN(bld, JOSE_RSA_MEMBER_PARAMS[i], numbers[i]) == 1;
    }
    if (ok && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL) {
        pkey = jose_pkey_fromdata_selection("RSA", params, EVP_PKEY_KEYPAIR);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 8; i++) BN_clear_free(numbers[i]);
    return pkey;
}

/* Full private-key validation (the pair matches, the numbers are consistent). 1 = ok. */
static inline int jose_pkey_pair_check(EVP_PKEY *pkey) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_pairwise_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) ERR_clear_error();
    return ok;
}

/* One-shot EVP_DigestSign: RSA PKCS#1 v1.5, RSASSA-PSS when pss_saltlen >= 0, or ECDSA (the
   signature is then DER; see jose_ecdsa_der_to_raw). `*siglen`: capacity in, length out.
   1 = ok. */
static inline int jose_digest_sign(EVP_PKEY *pkey, const EVP_MD *md, int pss_saltlen,
                                   const unsigned char *msg, size_t msglen,
                                   unsigned char *sig, size_t *siglen) {
    int ok = 0;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) == 1 &&
        jose_select_pss(pctx, pss_saltlen)) {
        ok = EVP_DigestSign(ctx, sig, siglen, msg, msglen) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) ERR_clear_error();
    return ok;
}

/* DER ECDSA-Sig-Value → JWS r‖s, each left-padded to `half` bytes (RFC 7518 §3.4). 1 = ok. */
static inline int jose_ecdsa_der_to_raw(const unsigned char *der, size_t derlen, size_t half, unsigned char *out) {
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    int ok = 0;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (sig != NULL) {
        ECDSA_SIG_get0(sig, &r, &s);
        ok = BN_bn2binpad(r, out, (int)half) == (int)half && BN_bn2binpad(s, out + half, (int)half) == (int)half;
    }
    ECDSA_SIG_free(sig);
    if (!ok) ERR_clear_error();
    return ok;
}

/*
 * ---- HMAC-SHA256: gatehouse's identity signature (X-Gatehouse-Signature) and the dev
 * issuer's session cookies ----
 * A context holds the key; `jose_hmac_sha256_mac` re-initialises it with that same key
 * (EVP_MAC_init with a NULL key keeps the previous one), so a request's MAC costs no key
 * setup and no algorithm fetch. A context is used by one thread at a time.
 */
static inline EVP_MAC_CTX *jose_hmac_sha256_new(const unsigned char *key, size_t len) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(ctx, key, len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

static inline int jose_hmac_sha256_mac(EVP_MAC_CTX *ctx, const void *data, size_t len, unsigned char *out) {
    size_t outlen = 0;
    int ok = EVP_MAC_init(ctx, NULL, 0, NULL) == 1 && EVP_MAC_update(ctx, data, len) == 1
        && EVP_MAC_final(ctx, out, &outlen, 32) == 1 && outlen == 32;
    if (!ok) ERR_clear_error();
    return ok;
}

#endif
