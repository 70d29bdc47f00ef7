/* json.h - small helpers over jansson for reading config files.
 *
 * Every loader reads config.json / index json / tokenizer.json through these so
 * that errors name the file and the key. */
#ifndef ZI_JSON_H
#define ZI_JSON_H

#include <jansson.h>

/* Parse a JSON file; on error records "path: line L column C: reason". */
json_t *zi_json_load_file(const char *path);
/* Parse JSON text of length n; `what` names the source in error messages. */
json_t *zi_json_load_buf(const char *buf, size_t n, const char *what);

/* Typed getters: return 0 on success, -1 with an error naming `what` and `key`.
 * The _opt variants leave *out unchanged and succeed when the key is absent.
 * An integer may be written as a real with an integral value (1024.0); a real
 * outside the range of long long is refused, never converted. Callers range-check
 * the long long before narrowing it (or use the _range getters). */
int zi_json_get_int(const json_t *obj, const char *key, long long *out, const char *what);
int zi_json_get_int_opt(const json_t *obj, const char *key, long long *out, const char *what);
int zi_json_get_num(const json_t *obj, const char *key, double *out, const char *what);
int zi_json_get_num_opt(const json_t *obj, const char *key, double *out, const char *what);
int zi_json_get_bool_opt(const json_t *obj, const char *key, int *out, const char *what);
/* Range-checked getters (the check comes before any conversion; NaN is out of range):
 * required = 0 leaves *out unchanged when the key is absent or null. */
int zi_json_get_int_range(const json_t *obj, const char *key, int required, long long lo, long long hi, int *out,
                          const char *what);
int zi_json_get_float_range(const json_t *obj, const char *key, int required, double lo, double hi, float *out,
                            const char *what);
/* Integer array of up to cap elements, each in [lo, hi]; the count goes to *n_out. */
int zi_json_get_int_array(const json_t *obj, const char *key, long long lo, long long hi, long long *out, int cap,
                          int *n_out, const char *what);

#endif
