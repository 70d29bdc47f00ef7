/* unit_json.c - JSON numbers are range-checked before any conversion (src/io/json.c):
 * reals far outside long long, integers outside int, floats outside float range or the
 * stated bounds are refused with a message naming the key; under `make test-san`
 * (float-cast-overflow, no recovery) a conversion of such a value would abort. */
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/io/json.h"
#include "unit.h"

static json_t *parse(const char *s) { return zi_json_load_buf(s, strlen(s), "test"); }

void unit_json(void) {
    json_t *j = parse("{\"big\": 1e300, \"nbig\": -1e19, \"whole\": 1024.0, \"half\": 2.5, \"i\": 7,"
                      " \"huge_int\": 9000000000, \"tiny\": 1e-50, \"f\": 1e39, \"arr\": [1, 2, 99999999999]}");
    if (!j) {
        UNIT_CHECK(0, "parse: %s", zi_last_error());
        return;
    }
    long long v = -1;
    UNIT_CHECK(zi_json_get_int_opt(j, "big", &v, "t") == -1 && v == -1 && strstr(zi_last_error(), "\"big\""),
               "1e300 is not converted to an integer: %s", zi_last_error());
    UNIT_CHECK(zi_json_get_int_opt(j, "nbig", &v, "t") == -1, "-1e19 refused");
    UNIT_CHECK(zi_json_get_int_opt(j, "whole", &v, "t") == 0 && v == 1024, "1024.0 accepted as 1024");
    UNIT_CHECK(zi_json_get_int_opt(j, "half", &v, "t") == -1, "2.5 is not an integer");
    int iv = 3;
    UNIT_CHECK(zi_json_get_int_range(j, "huge_int", 0, 0, 1LL << 40, &iv, "t") == -1 && iv == 3,
               "9e9 does not fit an int: %s", zi_last_error());
    UNIT_CHECK(zi_json_get_int_range(j, "i", 1, 0, 5, &iv, "t") == -1 && strstr(zi_last_error(), "out of range"),
               "7 outside [0, 5] refused: %s", zi_last_error());
    UNIT_CHECK(zi_json_get_int_range(j, "i", 1, 0, 10, &iv, "t") == 0 && iv == 7, "7 in [0, 10] accepted");
    UNIT_CHECK(zi_json_get_int_range(j, "absent", 1, 0, 10, &iv, "t") == -1, "required key missing refused");
    UNIT_CHECK(zi_json_get_int_range(j, "absent", 0, 0, 10, &iv, "t") == 0 && iv == 7, "optional key absent kept");
    float f = 1.0f;
    UNIT_CHECK(zi_json_get_float_range(j, "f", 0, 0, 1e30, &f, "t") == -1 && f == 1.0f, "1e39 refused for a float");
    UNIT_CHECK(zi_json_get_float_range(j, "tiny", 0, 1e-30, 1, &f, "t") == -1, "1e-50 below the bound refused");
    UNIT_CHECK(zi_json_get_float_range(j, "half", 1, 0, 10, &f, "t") == 0 && f == 2.5f, "2.5 accepted");
    long long arr[4];
    int n = 0;
    UNIT_CHECK(zi_json_get_int_array(j, "arr", 0, 1000000, arr, 4, &n, "t") == -1 && strstr(zi_last_error(), "[2]"),
               "array element out of range refused: %s", zi_last_error());
    UNIT_CHECK(zi_json_get_int_array(j, "arr", 0, 1LL << 40, arr, 4, &n, "t") == 0 && n == 3 && arr[2] == 99999999999LL,
               "array in range accepted");
    json_decref(j);
}
