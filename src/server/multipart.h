/* multipart.h - multipart/form-data request bodies -> the JSON object of request.h.
 *
 * Sits between http.c (which collected the body) and request.c (which checks fields):
 * OpenAI clients send /v1/images/edits as a form with files (image, image[], mask). */
#ifndef SRV_MULTIPART_H
#define SRV_MULTIPART_H

#include <stddef.h>

#include "request.h"

struct MHD_Connection;
struct json_t;

/* Parse body[0..len) by the connection's Content-Type boundary into a new JSON object
 * (*out, free with json_decref). 0, or -1 with *err filled. */
int srv_multipart_to_json(struct MHD_Connection *c, const char *body, size_t len, struct json_t **out, srv_error *err);

#endif
