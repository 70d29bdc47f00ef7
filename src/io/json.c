/* json.c - jansson helpers with file/key-naming error messages. */
#include "json.h"

#include <limits.h>
#include <math.h>

#include "../common/error.h"

json_t *zi_json_load_file(const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        if (e.line <= 0)
            zi_err("%s: %s", path, e.text);
        else
            zi_err("%s: invalid JSON at line %d column %d: %s", path, e.line, e.column, e.text);
    }
    return j;
}

json_t *zi_json_load_buf(const char *buf, size_t n, const char *what) {
    json_error_t e;
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &e);
    if (!j) zi_err("%s: invalid JSON at byte %d: %s", what, e.position, e.text);
    return j;
}

int zi_json_get_int_opt(const json_t *obj, const char *key, long long *out, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    /* 1024.0 is accepted as 1024; the range test comes before the conversion (a double
     * outside the range of long long must never be converted) */
    double d = json_is_real(v) ? json_real_value(v) : NAN;
    if (d >= -9.0e18 && d <= 9.0e18 && d == floor(d)) {
        *out = (long long)d;
        return 0;
    }
    return zi_err("%s: key \"%s\" must be an integer", what, key);
}

int zi_json_get_int(const json_t *obj, const char *key, long long *out, const char *what) {
    if (!json_object_get(obj, key)) return zi_err("%s: missing key \"%s\"", what, key);
    return zi_json_get_int_opt(obj, key, out, what);
}

int zi_json_get_num_opt(const json_t *obj, const char *key, double *out, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return zi_err("%s: key \"%s\" must be a number", what, key);
    *out = json_number_value(v);
    return 0;
}

int zi_json_get_num(const json_t *obj, const char *key, double *out, const char *what) {
    if (!json_object_get(obj, key)) return zi_err("%s: missing key \"%s\"", what, key);
    return zi_json_get_num_opt(obj, key, out, what);
}

int zi_json_get_float_range(const json_t *obj, const char *key, int required, double lo, double hi, float *out,
                            const char *what) {
    double d = *out;
    if ((required ? zi_json_get_num(obj, key, &d, what) : zi_json_get_num_opt(obj, key, &d, what)) != 0) return -1;
    if (!(d >= lo && d <= hi)) /* also NaN */
        return zi_err("%s: \"%s\" = %g is out of range [%g, %g]", what, key, d, lo, hi);
    *out = (float)d;
    return 0;
}

int zi_json_get_int_range(const json_t *obj, const char *key, int required, long long lo, long long hi, int *out,
                          const char *what) {
    long long v = *out;
    if ((required ? zi_json_get_int(obj, key, &v, what) : zi_json_get_int_opt(obj, key, &v, what)) != 0) return -1;
    if (v < lo || v > hi || v < INT_MIN || v > INT_MAX)
        return zi_err("%s: \"%s\" = %lld is out of range [%lld, %lld]", what, key, v, lo, hi);
    *out = (int)v;
    return 0;
}

int zi_json_get_bool_opt(const json_t *obj, const char *key, int *out, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return zi_err("%s: key \"%s\" must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

int zi_json_get_int_array(const json_t *obj, const char *key, long long lo, long long hi, long long *out, int cap,
                          int *n_out, const char *what) {
    json_t *v = json_object_get(obj, key);
    if (!v) return zi_err("%s: missing key \"%s\"", what, key);
    if (!json_is_array(v)) return zi_err("%s: key \"%s\" must be an array", what, key);
    size_t n = json_array_size(v);
    if (n > (size_t)cap) return zi_err("%s: key \"%s\" has %zu elements (at most %d expected)", what, key, n, cap);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) return zi_err("%s: \"%s\"[%zu] must be an integer", what, key, i);
        if (json_integer_value(e) < lo || json_integer_value(e) > hi)
            return zi_err("%s: \"%s\"[%zu] = %lld is out of range [%lld, %lld]", what, key, i,
                          (long long)json_integer_value(e), lo, hi);
        out[i] = json_integer_value(e);
    }
    if (n_out) *n_out = (int)n;
    return 0;
}
