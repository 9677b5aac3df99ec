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

/* Turns finished params into a public EVP_PKEY of the given keymgmt ("EC", "RSA"). */
static inline EVP_PKEY *jose_pkey_fromdata(const char *type, OSSL_PARAM *params) {
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    if (pkey == NULL) ERR_clear_error();
    return pkey;
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
        (pss_saltlen < 0 ||
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_saltlen) == 1))) {
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

#endif
