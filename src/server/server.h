/* server.h - `zimage serve`: the HTTP server's entry point, called by the CLI (src/cli/main.c).
 * Not part of libzimage: src/server/ is linked into the zimage program only (see Makefile). */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

/* argv[0] is "serve". Returns the process exit code. */
int zimage_serve_main(int argc, char **argv);

#endif
