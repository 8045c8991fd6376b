/* src/http/edit.h - a message head being edited on its way out: its fields, in wire order,
 * which rules can read, add, set and remove. A field nobody touched keeps its exact wire
 * bytes (case, spacing); a new or changed one is written "Name: value\r\n". */
#ifndef SHUNT_HTTP_EDIT_H
#define SHUNT_HTTP_EDIT_H

#include <stddef.h>

#include "core/errors.h"
#include "core/slice.h"
#include "http/parser.h"

/* One field. */
struct shunt_edit_field {
    struct shunt_slice name;  /* as on the wire, or as a rule gave it */
    struct shunt_slice value;
    struct shunt_slice line;  /* the whole line with its CRLF: the wire bytes, or ours */
    unsigned removed : 1;
    unsigned owned : 1;       /* name, value and line point into the edit's own storage */
};

/* Plain data; init, edit, read the lines, dispose. */
struct shunt_head_edit {
    struct shunt_edit_field *f; /* the caller's array */
    size_t n, cap;
    char *store; /* owned lines, one after the other; moves when it grows */
    size_t store_len, store_cap;
    size_t store_max; /* 0: no bound; else store_cap never grows past it (a rule's edits
                         count against its memory limit) */
    unsigned changes; /* edits made */
};

/* Starts an edit of <head>'s fields in the caller's <fields> array (<cap> entries, at least
 * head->n_headers). The fields point into the head's buffer, which must stay put. */
void shunt_edit_init(struct shunt_head_edit *e, const struct shunt_http_head *head,
                     struct shunt_edit_field *fields, size_t cap);

/* Frees what the edit allocated. */
void shunt_edit_dispose(struct shunt_head_edit *e);

/* Returns the value of the first field named <name> (ASCII case ignored) that is not
 * removed, and sets *<found>; an empty slice and *<found> 0 when there is none. */
struct shunt_slice shunt_edit_get(const struct shunt_head_edit *e, const char *name,
                                  size_t name_len, int *found);

/* Returns 1 when <name> is a token (RFC 9110 5.6.2) and <value> holds no CR, LF or NUL: a
 * field that can go on the wire without injecting another. */
int shunt_edit_field_valid(const char *name, size_t name_len, const char *value,
                           size_t value_len);

/* Returns 1 when the field <name> frames the message: Content-Length or Transfer-Encoding
 * (RFC 9112 6). The proxy frames a body by the head as received, so a rule that changed
 * either would send the next hop a message it reads to another length (request smuggling):
 * rules may not set, add or remove them. */
int shunt_edit_frames(const char *name, size_t name_len);

/* Appends a field. Returns 0; SHUNT_EINVAL when <name> is not a token or <value> holds CR,
 * LF or NUL (no header injection); SHUNT_ETOOBIG when the array is full; SHUNT_ENOMEM when
 * the store would grow past store_max or malloc fails (the edit is then unchanged). */
SHUNT_MUST_CHECK int shunt_edit_add(struct shunt_head_edit *e, const char *name, size_t name_len,
                                    const char *value, size_t value_len);

/* Sets the field: the first one named <name> gets <value> in place, later ones go; added at
 * the end when there is none. Same returns as shunt_edit_add(). Setting a value a field
 * already has changes nothing. */
SHUNT_MUST_CHECK int shunt_edit_set(struct shunt_head_edit *e, const char *name, size_t name_len,
                                    const char *value, size_t value_len);

/* Removes every field named <name>; returns how many. */
int shunt_edit_remove(struct shunt_head_edit *e, const char *name, size_t name_len);

#endif
