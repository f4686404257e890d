/*
 * XChaCha20-Poly1305 (IETF, as libsodium's crypto_aead_xchacha20poly1305_ietf) over runs of
 * sealed sector records, with OpenSSL's ChaCha20-Poly1305 doing the bulk work: HChaCha20 turns
 * the key and the first 16 nonce bytes into a subkey, and ChaCha20-Poly1305 (RFC 8439) seals the
 * sector under that subkey and the nonce 0^4 ‖ the last 8 nonce bytes. One cipher context is kept
 * for the life of the process and reset per sector with a new key and IV only; a whole run of
 * sectors is one call from JavaScript.
 *
 * Record layout (see src/block/volume/seal.ts): ciphertext (4096) ‖ nonce (24) ‖ tag (16) ‖
 * format (1) ‖ zero (23); nonce = version (8, big-endian) ‖ random (16).
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#define SECTOR 4096
#define TRAILER 64
#define RECORD (SECTOR + TRAILER)
#define NONCE 24
#define TAG 16
#define KEY 32
#define RANDOM 16
#define AAD 16
#define FORMAT_AT (SECTOR + NONCE + TAG)
#define FORMAT 2

/* The cipher context of this thread's JavaScript environment (each worker thread has its own). */
static EVP_CIPHER_CTX *context(napi_env env) {
  void *c = NULL;
  return napi_get_instance_data(env, &c) == napi_ok ? c : NULL;
}

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))
#define QR(a, b, c, d) \
  a += b; d ^= a; d = ROTL(d, 16); \
  c += d; b ^= c; b = ROTL(b, 12); \
  a += b; d ^= a; d = ROTL(d, 8); \
  c += d; b ^= c; b = ROTL(b, 7);

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put_le32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

/* HChaCha20: the subkey of XChaCha20 for `key` and the first 16 bytes of its nonce. */
static void hchacha20(uint8_t out[KEY], const uint8_t key[KEY], const uint8_t in[16]) {
  uint32_t x[16] = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 };
  for (int i = 0; i < 8; i++) x[4 + i] = le32(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = le32(in + 4 * i);
  for (int i = 0; i < 10; i++) {
    QR(x[0], x[4], x[8], x[12]) QR(x[1], x[5], x[9], x[13]) QR(x[2], x[6], x[10], x[14]) QR(x[3], x[7], x[11], x[15])
    QR(x[0], x[5], x[10], x[15]) QR(x[1], x[6], x[11], x[12]) QR(x[2], x[7], x[8], x[13]) QR(x[3], x[4], x[9], x[14])
  }
  for (int i = 0; i < 4; i++) { put_le32(out + 4 * i, x[i]); put_le32(out + 16 + 4 * i, x[12 + i]); }
}

static void put_be64(uint8_t *p, uint64_t v) { for (int i = 7; i >= 0; i--) { p[i] = v & 0xff; v >>= 8; } }
static uint64_t be64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v = v << 8 | p[i]; return v; }

/* Seals one sector: `plain` (may equal `ct`) into `ct`, tag into `tag`; 0 on failure. */
static int seal_one(EVP_CIPHER_CTX *ctx, const uint8_t key[KEY], const uint8_t nonce[NONCE], const uint8_t aad[AAD], const uint8_t *plain, uint8_t *ct, uint8_t *tag) {
  uint8_t sub[KEY], iv[12] = { 0 };
  int len;
  hchacha20(sub, key, nonce);
  memcpy(iv + 4, nonce + 16, 8);
  int ok = EVP_EncryptInit_ex(ctx, NULL, NULL, sub, iv) == 1
    && EVP_EncryptUpdate(ctx, NULL, &len, aad, AAD) == 1
    && EVP_EncryptUpdate(ctx, ct, &len, plain, SECTOR) == 1
    && EVP_EncryptFinal_ex(ctx, ct + SECTOR, &len) == 1
    && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, tag) == 1;
  OPENSSL_cleanse(sub, sizeof sub);
  return ok;
}

/* Opens one sector in place (ciphertext at `ct`); 1 when the tag verifies. */
static int open_one(EVP_CIPHER_CTX *ctx, const uint8_t key[KEY], const uint8_t nonce[NONCE], const uint8_t aad[AAD], uint8_t *ct, const uint8_t *tag) {
  uint8_t sub[KEY], iv[12] = { 0 }, t[TAG];
  int len;
  hchacha20(sub, key, nonce);
  memcpy(iv + 4, nonce + 16, 8);
  memcpy(t, tag, TAG);
  int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, sub, iv) == 1
    && EVP_DecryptUpdate(ctx, NULL, &len, aad, AAD) == 1
    && EVP_DecryptUpdate(ctx, ct, &len, ct, SECTOR) == 1
    && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, t) == 1
    && EVP_DecryptFinal_ex(ctx, ct + SECTOR, &len) == 1;
  OPENSSL_cleanse(sub, sizeof sub);
  return ok;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* A Buffer / Uint8Array argument's bytes; NULL (with a thrown error) when it is not one. */
static uint8_t *bytes_of(napi_env env, napi_value v, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  napi_typedarray_type type;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) return NULL;
  return data;
}

static int num_of(napi_env env, napi_value v, double *out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}

/* The exact whole number `d` in [min, max]. */
static int whole(double d, double min, double max) { return d >= min && d <= max && d == (double)(int64_t)d; }

/*
 * seal(key, nonceRandom, volumeTag, src, srcStride, out, firstSector, firstVersion, n): seals n
 * sectors, sector i read from src at i * srcStride (4096: packed plaintext; 4160: in its record
 * slot, which may be `out` itself), into records at out[i * 4160].
 */
static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 9) return fail(env, "seal takes 9 arguments");
  size_t klen, rlen, tlen, slen, olen;
  uint8_t *key = bytes_of(env, a[0], &klen), *rnd = bytes_of(env, a[1], &rlen), *vol = bytes_of(env, a[2], &tlen);
  uint8_t *src = bytes_of(env, a[3], &slen), *out = bytes_of(env, a[5], &olen);
  double stride, first, version, n;
  if (!key || klen != KEY || !rnd || rlen != RANDOM || !vol || tlen != 8 || !src || !out) return fail(env, "seal: bad key, nonce half, volume tag or buffers");
  if (!num_of(env, a[4], &stride) || !num_of(env, a[6], &first) || !num_of(env, a[7], &version) || !num_of(env, a[8], &n)) return fail(env, "seal: numbers expected");
  if ((stride != SECTOR && stride != RECORD) || !whole(n, 0, 1 << 24) || !whole(first, 0, 9007199254740991.0) || !whole(version, 1, 9007199254740991.0 - n))
    return fail(env, "seal: bad stride, count, sector or version");
  size_t cnt = (size_t)n, st = (size_t)stride;
  if (olen < cnt * RECORD || (cnt > 0 && slen < (cnt - 1) * st + SECTOR)) return fail(env, "seal: buffers too short for the run");
  EVP_CIPHER_CTX *ctx = context(env);
  if (ctx == NULL) return fail(env, "seal: no cipher context");
  uint8_t aad[AAD];
  memcpy(aad, vol, 8);
  for (size_t i = 0; i < cnt; i++) {
    uint8_t *r = out + i * RECORD;
    const uint8_t *p = src + i * st;
    if (p != r && p < r + RECORD && r < p + SECTOR) return fail(env, "seal: source and records overlap other than in place");
    put_be64(aad + 8, (uint64_t)first + i);
    uint8_t *nonce = r + SECTOR;
    put_be64(nonce, (uint64_t)version + i);
    memcpy(nonce + 8, rnd, RANDOM);
    if (!seal_one(ctx, key, nonce, aad, p, r, r + SECTOR + NONCE)) return fail(env, "seal: OpenSSL failed");
    r[FORMAT_AT] = FORMAT;
    memset(r + FORMAT_AT + 1, 0, RECORD - FORMAT_AT - 1);
  }
  return NULL;
}

static int all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
}

/*
 * open(key, volumeTag, rec, firstSector, n, versions): opens n records at rec[0..] in place and
 * moves each sector's plaintext to rec[i * 4096]; versions[i] = the record's version, 0 for an
 * all-zero record (opens as zeroes), -1 for one that fails authentication (its sector is zeroed).
 */
static napi_value open_run(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 6) return fail(env, "open takes 6 arguments");
  size_t klen, tlen, rlen;
  uint8_t *key = bytes_of(env, a[0], &klen), *vol = bytes_of(env, a[1], &tlen), *rec = bytes_of(env, a[2], &rlen);
  double first, n;
  if (!key || klen != KEY || !vol || tlen != 8 || !rec) return fail(env, "open: bad key, volume tag or records");
  if (!num_of(env, a[3], &first) || !num_of(env, a[4], &n) || !whole(n, 0, 1 << 24) || !whole(first, 0, 9007199254740991.0)) return fail(env, "open: bad sector or count");
  bool is;
  napi_typedarray_type type;
  size_t vlen, off;
  void *vdata;
  napi_value ab;
  if (napi_is_typedarray(env, a[5], &is) != napi_ok || !is || napi_get_typedarray_info(env, a[5], &type, &vlen, &vdata, &ab, &off) != napi_ok || type != napi_float64_array)
    return fail(env, "open: versions must be a Float64Array");
  size_t cnt = (size_t)n;
  if (rlen < cnt * RECORD || vlen < cnt) return fail(env, "open: buffers too short for the run");
  double *versions = vdata;
  EVP_CIPHER_CTX *ctx = context(env);
  if (ctx == NULL) return fail(env, "open: no cipher context");
  uint8_t aad[AAD];
  memcpy(aad, vol, 8);
  for (size_t i = 0; i < cnt; i++) {
    uint8_t *r = rec + i * RECORD, *dst = rec + i * SECTOR;
    double v;
    if (r[FORMAT_AT] != FORMAT) {
      v = all_zero(r, RECORD) ? 0 : -1;
      memset(dst, 0, SECTOR);
    } else {
      put_be64(aad + 8, (uint64_t)first + i);
      uint64_t ver = be64(r + SECTOR);
      if (open_one(ctx, key, r + SECTOR, aad, r, r + SECTOR + NONCE) && ver > 0) {
        v = (double)ver;
        if (dst != r) memmove(dst, r, SECTOR);
      } else {
        v = -1;
        memset(dst, 0, SECTOR);
      }
    }
    versions[i] = v;
  }
  return NULL;
}


/*
 * AES-256-GCM of one whole content chunk (src/content/crypto.ts), straight between the caller's
 * buffers: Node's cipher.update allocates a fresh buffer per call, and a chunk fed through it in
 * slices cost an allocation and a copy per slice, and the garbage collection they bring.
 */
#define GCM_KEY 32
#define GCM_IV 12
#define GCM_TAG 16

/*
 * Like bytes_of, but an empty array is fine too (its data pointer may be NULL): points at `empty`.
 * The length starts non-zero so that a value that is no typed array never reads as an empty one.
 */
static uint8_t gcm_empty[1];
static uint8_t *gcm_bytes(napi_env env, napi_value v, size_t *len) {
  *len = 1;
  uint8_t *p = bytes_of(env, v, len);
  return p == NULL && *len == 0 ? gcm_empty : p;
}

/* gcmSeal(key, iv, plain, out): ciphertext of `plain` into `out`, then its 16-byte tag. */
static napi_value gcm_seal(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 4) return fail(env, "gcmSeal takes 4 arguments");
  size_t klen, ivlen, plen, olen;
  uint8_t *key = gcm_bytes(env, a[0], &klen), *iv = gcm_bytes(env, a[1], &ivlen), *plain = gcm_bytes(env, a[2], &plen), *out = gcm_bytes(env, a[3], &olen);
  if (key == NULL || iv == NULL || plain == NULL || out == NULL) return fail(env, "gcmSeal takes Uint8Arrays");
  if (klen != GCM_KEY || ivlen != GCM_IV) return fail(env, "gcmSeal: the key is 32 bytes and the iv 12");
  if (plen > INT32_MAX - GCM_TAG || olen < plen + GCM_TAG) return fail(env, "gcmSeal: the output holds the ciphertext and its tag");
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, fin = 0;
  int ok = ctx != NULL
    && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) == 1
    && EVP_EncryptUpdate(ctx, out, &len, plain, (int)plen) == 1
    && EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1
    && (size_t)(len + fin) == plen
    && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, out + plen) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    napi_throw_error(env, NULL, "gcmSeal: OpenSSL failed");
    return NULL;
  }
  return NULL;
}

/*
 * gcmOpen(key, iv, data, out): `data` is ciphertext then tag; the plaintext goes to `out`. True
 * when the tag verifies; false, with `out` zeroed, when it does not.
 */
static napi_value gcm_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 4) return fail(env, "gcmOpen takes 4 arguments");
  size_t klen, ivlen, dlen, olen;
  uint8_t *key = gcm_bytes(env, a[0], &klen), *iv = gcm_bytes(env, a[1], &ivlen), *data = gcm_bytes(env, a[2], &dlen), *out = gcm_bytes(env, a[3], &olen);
  if (key == NULL || iv == NULL || data == NULL || out == NULL) return fail(env, "gcmOpen takes Uint8Arrays");
  if (klen != GCM_KEY || ivlen != GCM_IV) return fail(env, "gcmOpen: the key is 32 bytes and the iv 12");
  if (dlen < GCM_TAG || dlen > (size_t)INT32_MAX || olen < dlen - GCM_TAG) return fail(env, "gcmOpen: the data holds a tag and the output its plaintext");
  size_t n = dlen - GCM_TAG;
  uint8_t tag[GCM_TAG];
  memcpy(tag, data + n, GCM_TAG);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, fin = 0;
  int ok = ctx != NULL
    && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv) == 1
    && EVP_DecryptUpdate(ctx, out, &len, data, (int)n) == 1
    && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag) == 1
    && EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1
    && (size_t)(len + fin) == n;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok && n > 0) memset(out, 0, n);
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

static void free_context(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  EVP_CIPHER_CTX_free(data);
}

static napi_value init(napi_env env, napi_value exports) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL || EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, 1) != 1 || napi_set_instance_data(env, ctx, free_context, NULL) != napi_ok) {
    EVP_CIPHER_CTX_free(ctx);
    napi_throw_error(env, NULL, "sector_aead: OpenSSL has no ChaCha20-Poly1305");
    return NULL;
  }
  napi_property_descriptor p[] = {
    { "seal", NULL, seal, NULL, NULL, NULL, napi_default, NULL },
    { "open", NULL, open_run, NULL, NULL, NULL, napi_default, NULL },
    { "gcmSeal", NULL, gcm_seal, NULL, NULL, NULL, napi_default, NULL },
    { "gcmOpen", NULL, gcm_open, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 4, p);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
