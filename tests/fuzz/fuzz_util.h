/* fuzz_util.h - shared plumbing of the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * The parsers under test read files, so each target writes the fuzz input to a file
 * in a private temporary directory (under $TMPDIR, /dev/shm when it exists) and
 * calls the loader on it. Every input must either load or be refused with a
 * message; ASan/UBSan (built in by scripts/fuzz.sh) catch everything else. */
#ifndef ZI_FUZZ_UTIL_H
#define ZI_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/common/error.h"

static char fuzz_dir[256];

/* Private directory for this process (created once, removed at exit). */
static inline void fuzz_dir_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (fuzz_dir[0] && system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

static inline const char *fuzz_tmpdir(void) {
    if (fuzz_dir[0]) return fuzz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/zimage-fuzz-XXXXXX", base);
    if (!mkdtemp(fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_cleanup);
    return fuzz_dir;
}

/* Write data to <tmpdir>/<name>; returns the path (static buffer). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: write input");
        abort();
    }
    return path;
}

/* A refused input must leave a message (printed when FUZZ_VERBOSE is set: which seeds load). */
static inline void fuzz_expect_message(const char *what) {
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz: %s refused: %s\n", what, zi_last_error());
    if (!zi_last_error()[0]) {
        fprintf(stderr, "fuzz: %s refused an input without an error message\n", what);
        abort();
    }
}

/* Fixtures root: $ZIMAGE_FIXTURES or tests/fixtures (run from the repository root). */
static inline const char *fuzz_fixtures(void) {
    const char *f = getenv("ZIMAGE_FIXTURES");
    return f && *f ? f : "tests/fixtures";
}
#endif
