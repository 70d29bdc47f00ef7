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
 * The _opt variants leave *out unchanged and succeed when the key is absent. */
int zi_json_get_int(const json_t *obj, const char *key, long long *out, const char *what);
int zi_json_get_int_opt(const json_t *obj, const char *key, long long *out, const char *what);
int zi_json_get_num(const json_t *obj, const char *key, double *out, const char *what);
int zi_json_get_num_opt(const json_t *obj, const char *key, double *out, const char *what);
int zi_json_get_bool_opt(const json_t *obj, const char *key, int *out, const char *what);
/* Integer array of exactly n elements (n < 0: any length up to cap, count in *n_out). */
int zi_json_get_int_array(const json_t *obj, const char *key, long long *out, int cap, int *n_out,
                          const char *what);

#endif
