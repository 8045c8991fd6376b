/* src/rules/options.c - the table of named toggles: a mutex for declaring and listing, an
 * atomic flag per option for the hot path. */
#include "rules/options.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct option {
    char name[SHUNT_OPTION_NAME_MAX + 1];
    int default_on;
    atomic_int on;
};

static struct option table[SHUNT_OPTIONS_MAX];
static atomic_int n_options;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int find(const char *name)
{
    int n = atomic_load(&n_options);
    for (int i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return i;
    return -1;
}

int shunt_options_declare(const char *name, int default_on)
{
    size_t len = strlen(name);
    if (len == 0 || len > SHUNT_OPTION_NAME_MAX)
        return SHUNT_EINVAL;
    pthread_mutex_lock(&mu);
    int i = find(name);
    if (i < 0) {
        i = atomic_load(&n_options);
        if (i == SHUNT_OPTIONS_MAX) {
            pthread_mutex_unlock(&mu);
            return SHUNT_ETOOBIG;
        }
        memcpy(table[i].name, name, len + 1);
        table[i].default_on = default_on != 0;
        atomic_store(&table[i].on, default_on != 0);
        atomic_store(&n_options, i + 1); /* published after the entry is complete */
    }
    pthread_mutex_unlock(&mu);
    return i;
}

int shunt_options_on(int index)
{
    if (index < 0 || index >= atomic_load(&n_options))
        return 0;
    return atomic_load_explicit(&table[index].on, memory_order_relaxed);
}

int shunt_options_set(const char *name, int on)
{
    pthread_mutex_lock(&mu);
    int i = find(name);
    if (i >= 0)
        atomic_store(&table[i].on, on != 0);
    pthread_mutex_unlock(&mu);
    return i >= 0 ? 0 : SHUNT_EINVAL;
}

void shunt_options_each(void (*cb)(void *ud, const char *name, int on, int default_on), void *ud)
{
    pthread_mutex_lock(&mu);
    int n = atomic_load(&n_options);
    for (int i = 0; i < n; i++)
        cb(ud, table[i].name, atomic_load(&table[i].on), table[i].default_on);
    pthread_mutex_unlock(&mu);
}

void shunt_options_reset(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&n_options, 0);
    pthread_mutex_unlock(&mu);
}
