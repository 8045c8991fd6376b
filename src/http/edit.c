/* src/http/edit.c - editing a head's fields without losing the bytes nobody touched. */
#include "http/edit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


void shunt_edit_init(struct shunt_head_edit *e, const struct shunt_http_head *head,
                     struct shunt_edit_field *fields, size_t cap)
{
    memset(e, 0, sizeof(*e));
    e->f = fields;
    e->cap = cap;
    for (size_t i = 0; i < head->n_headers && i < cap; i++) {
        const struct shunt_http_header *h = &head->headers[i];
        e->f[i] = (struct shunt_edit_field){h->name, h->value, h->line, 0, 0};
    }
    e->n = head->n_headers < cap ? head->n_headers : cap;
}

void shunt_edit_dispose(struct shunt_head_edit *e)
{
    free(e->store);
    e->store = NULL;
    e->store_len = e->store_cap = 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int shunt_edit_field_valid(const char *name, size_t name_len, const char *value,
                           size_t value_len)
{
    if (name_len == 0)
        return 0;
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)name[i]))
            return 0;
    for (size_t i = 0; i < value_len; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return 0;
    return 1;
}

/* Writes "name: value\r\n" into the store and points <f> at it. When the store moves, the
 * fields that point into it are moved along. Returns 0, or SHUNT_ENOMEM (nothing changed)
 * when the store would pass store_max or malloc fails: the lines are a rule's, sized by
 * whatever it computed, so this fails softly (STYLE 4). */
static int own_line(struct shunt_head_edit *e, struct shunt_edit_field *f, const char *name,
                    size_t name_len, const char *value, size_t value_len)
{
    size_t need = name_len + value_len + 4;
    if (need > e->store_cap - e->store_len) {
        if (need > SIZE_MAX / 4 - e->store_len)
            return SHUNT_ENOMEM;
        size_t cap = e->store_cap ? e->store_cap * 2 : 256;
        while (cap < e->store_len + need)
            cap *= 2;
        if (e->store_max != 0 && cap > e->store_max)
            cap = e->store_len + need; /* just what fits, when that does */
        if (e->store_max != 0 && cap > e->store_max)
            return SHUNT_ENOMEM;
        char *old = e->store, *p = malloc(cap);
        if (p == NULL)
            return SHUNT_ENOMEM;
        if (old != NULL)
            memcpy(p, old, e->store_len);
        for (size_t i = 0; i < e->n && old != NULL; i++) {
            struct shunt_edit_field *g = &e->f[i];
            if (!g->owned)
                continue;
            g->name.base = p + (g->name.base - old);
            g->value.base = p + (g->value.base - old);
            g->line.base = p + (g->line.base - old);
        }
        free(old);
        e->store = p;
        e->store_cap = cap;
    }
    char *line = e->store + e->store_len;
    memcpy(line, name, name_len);
    memcpy(line + name_len, ": ", 2);
    memcpy(line + name_len + 2, value, value_len);
    memcpy(line + name_len + 2 + value_len, "\r\n", 2);
    f->name = shunt_slice_make(line, name_len);
    f->value = shunt_slice_make(line + name_len + 2, value_len);
    f->line = shunt_slice_make(line, need);
    f->owned = 1;
    e->store_len += need;
    return 0;
}

struct shunt_slice shunt_edit_get(const struct shunt_head_edit *e, const char *name,
                                  size_t name_len, int *found)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct shunt_edit_field *f = &e->f[i];
        if (!f->removed && shunt_slice_ieq(f->name, name, name_len)) {
            *found = 1;
            return f->value;
        }
    }
    *found = 0;
    return shunt_slice_make(NULL, 0);
}

int shunt_edit_add(struct shunt_head_edit *e, const char *name, size_t name_len,
                   const char *value, size_t value_len)
{
    if (!shunt_edit_field_valid(name, name_len, value, value_len))
        return SHUNT_EINVAL;
    if (e->n == e->cap)
        return SHUNT_ETOOBIG;
    struct shunt_edit_field *f = &e->f[e->n];
    memset(f, 0, sizeof(*f));
    int r = own_line(e, f, name, name_len, value, value_len);
    if (r != 0)
        return r;
    e->n++;
    e->changes++;
    return 0;
}

int shunt_edit_set(struct shunt_head_edit *e, const char *name, size_t name_len,
                   const char *value, size_t value_len)
{
    if (!shunt_edit_field_valid(name, name_len, value, value_len))
        return SHUNT_EINVAL;
    struct shunt_edit_field *first = NULL;
    for (size_t i = 0; i < e->n && first == NULL; i++)
        if (!e->f[i].removed && shunt_slice_ieq(e->f[i].name, name, name_len))
            first = &e->f[i];
    if (first == NULL)
        return shunt_edit_add(e, name, name_len, value, value_len);
    if (!shunt_slice_eq(first->value, value, value_len)) {
        /* keep the field's own spelling of its name */
        char keep[256];
        size_t kl = first->name.len < sizeof(keep) ? first->name.len : sizeof(keep);
        memcpy(keep, first->name.base, kl);
        int r = own_line(e, first, keep, kl, value, value_len);
        if (r != 0)
            return r; /* before the later fields go: a failed set changes nothing */
        e->changes++;
    }
    for (struct shunt_edit_field *f = first + 1; f < e->f + e->n; f++) {
        if (!f->removed && shunt_slice_ieq(f->name, name, name_len)) {
            f->removed = 1;
            e->changes++;
        }
    }
    return 0;
}

int shunt_edit_remove(struct shunt_head_edit *e, const char *name, size_t name_len)
{
    int n = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct shunt_edit_field *f = &e->f[i];
        if (!f->removed && shunt_slice_ieq(f->name, name, name_len)) {
            f->removed = 1;
            n++;
        }
    }
    e->changes += (unsigned)n;
    return n;
}

int shunt_edit_frames(const char *name, size_t name_len)
{
    struct shunt_slice n = shunt_slice_make(name, name_len);
    return SHUNT_SLICE_IEQ_LIT(n, "Content-Length") || SHUNT_SLICE_IEQ_LIT(n, "Transfer-Encoding");
}
