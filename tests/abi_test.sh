#!/usr/bin/env bash
# abi_test.sh BUILD FIXTURES - the shared library's ABI and the install tree.
#   1. SONAME libzimage.so.0, symlinks libzimage.so -> .so.0 -> .so.<version>
#   2. only zimage_* symbols exported (nm -D), and every ZIMAGE_API function of the header is
#   3. make install PREFIX=<tmp>: the README's C example compiles with the installed
#      zimage.pc (pkg-config), links the shared library and generates an image
set -uo pipefail
build=$1 fixtures=$(cd "$2" && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }

version=$(sed -n 's/^#define ZIMAGE_VERSION "\(.*\)"/\1/p' include/zimage.h)
real=$build/libzimage.so.$version
soname=$(readelf -d "$real" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libzimage.so.${version%%.*}" ] && ok "SONAME $soname" || bad "SONAME is '$soname'"
[ "$(readlink "$build/libzimage.so")" = "libzimage.so.${version%%.*}" ] &&
  [ "$(readlink "$build/libzimage.so.${version%%.*}")" = "libzimage.so.$version" ] &&
  ok "symlinks libzimage.so -> .so.${version%%.*} -> .so.$version" || bad "symlinks"

exported=$(nm -D --defined-only "$real" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort)
others=$(echo "$exported" | grep -v '^zimage_' | grep -v '^$' || true)
[ -z "$others" ] && ok "exports only zimage_* ($(echo "$exported" | wc -l) symbols)" ||
  bad "exports non-zimage symbols: $(echo $others | head -c 400)"
declared=$(sed -n 's/^ZIMAGE_API .*[ *]\(zimage_[a-z_0-9]*\)(.*/\1/p' include/zimage.h | sort)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[ -n "$declared" ] && [ -z "$missing" ] && ok "all $(echo "$declared" | wc -l) ZIMAGE_API functions exported" ||
  bad "declared but not exported: $missing"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if make -s install BUILD="$build" PREFIX="$tmp/prefix" > "$tmp/install.log" 2>&1; then
  ok "make install PREFIX=<tmp>"
else
  bad "make install: $(tail -5 "$tmp/install.log")"
fi
[ -f "$tmp/prefix/lib/pkgconfig/zimage.pc" ] && [ -f "$tmp/prefix/include/zimage.h" ] && [ -x "$tmp/prefix/bin/zimage" ] &&
  [ -L "$tmp/prefix/lib/libzimage.so" ] && [ -f "$tmp/prefix/lib/libzimage.a" ] && ok "installed files present" ||
  bad "installed tree incomplete: $(cd "$tmp/prefix" 2>/dev/null && find . | tr '\n' ' ')"
# the README's C API example, verbatim
awk '/^## C API/ {f=1} f && /^```c/ {c=1; next} c && /^```/ {exit} c' README.md > "$tmp/example.c"
[ -s "$tmp/example.c" ] && ok "README C example extracted ($(wc -l < "$tmp/example.c") lines)" || bad "no C example in README"
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
if ${CC:-cc} $(pkg-config --cflags zimage) "$tmp/example.c" -o "$tmp/example" $(pkg-config --libs zimage) 2> "$tmp/cc.log"; then
  ok "README example compiles and links against the installed zimage.pc"
  needed=$(readelf -d "$tmp/example" | sed -n 's/.*(NEEDED).*\[\(libzimage[^]]*\)\]/\1/p')
  [ "$needed" = "libzimage.so.${version%%.*}" ] && ok "example needs $needed" || bad "example NEEDED '$needed'"
  (cd "$tmp" && LD_LIBRARY_PATH=$tmp/prefix/lib ./example "$fixtures/tiny-zimage" > run.log 2>&1) && [ -s "$tmp/fox.png" ] &&
    ok "example runs from the installed shared library" || bad "example run: $(tail -5 "$tmp/run.log")"
else
  bad "README example does not compile: $(head -20 "$tmp/cc.log")"
fi
echo "abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
