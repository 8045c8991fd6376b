/* tests/unit/core/test_arena.c - the exchange's arena: aligned allocations that never
 * overlap, large ones apart, the owner's buffer first, everything gone at a reset. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"

static void test_allocations_are_aligned_and_apart(void **state)
{
    struct shunt_arena a;
    shunt_arena_init(&a);
    char *prev = NULL;
    size_t prev_len = 0;
    for (size_t i = 1; i < 300; i++) {
        char *p = shunt_arena_alloc(&a, i);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, (int)i, i); /* ASan: every byte is ours */
        if (prev != NULL) {
            assert_true(p >= prev + prev_len || p + i <= prev); /* no overlap */
            assert_int_equal((unsigned char)prev[prev_len - 1], (unsigned char)prev_len);
        }
        prev = p;
        prev_len = i;
    }
    shunt_arena_dispose(&a);
}

static void test_earlier_bytes_survive_later_allocations(void **state)
{
    struct shunt_arena a;
    shunt_arena_init(&a);
    char *s[100];
    for (int i = 0; i < 100; i++) {
        char buf[32];
        int l = snprintf(buf, sizeof(buf), "string number %d", i);
        s[i] = shunt_arena_strndup(&a, buf, (size_t)l);
        (void)shunt_arena_alloc(&a, 5000); /* a large one in between */
    }
    for (int i = 0; i < 100; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "string number %d", i);
        assert_string_equal(s[i], buf);
    }
    shunt_arena_dispose(&a);
}

static void test_large_allocations_get_blocks_of_their_own(void **state)
{
    struct shunt_arena a;
    shunt_arena_init(&a);
    char *big = shunt_arena_alloc(&a, 100000);
    memset(big, 'x', 100000);
    char *small = shunt_arena_alloc(&a, 8);
    memcpy(small, "1234567", 8);
    assert_int_equal(big[99999], 'x');
    assert_string_equal(small, "1234567");
    assert_int_equal(shunt_arena_used(&a), 100008);
    shunt_arena_dispose(&a);
}

static void test_reset_frees_the_chunks_and_starts_again_in_the_owners_buffer(void **state)
{
    struct shunt_arena a;
    alignas(max_align_t) char buf[256];
    shunt_arena_init_in(&a, buf, sizeof(buf));
    /* a usual exchange fits in the owner's buffer */
    char *first = shunt_arena_alloc(&a, 16);
    assert_ptr_equal(first, buf);
    char *second = shunt_arena_strndup(&a, "GET", 3);
    assert_true(second > first && second + 4 <= buf + sizeof(buf));
    /* more goes to chunks, a large one to a block of its own */
    for (int i = 0; i < 50; i++) {
        char *p = shunt_arena_alloc(&a, 1000);
        assert_true(p < buf || p >= buf + sizeof(buf));
        memset(p, 1, 1000);
    }
    (void)shunt_arena_alloc(&a, 1 << 20);
    shunt_arena_reset(&a);
    assert_int_equal(shunt_arena_used(&a), 0);
    /* the next exchange starts in the owner's buffer again (ASan/LSan: the chunks are gone) */
    assert_ptr_equal(shunt_arena_alloc(&a, 16), buf);
    shunt_arena_reset(&a);
    shunt_arena_reset(&a); /* twice in a row, and on an empty arena, is fine */
    shunt_arena_dispose(&a);
    shunt_arena_dispose(&a);
}

static void test_without_a_buffer_the_first_chunk_comes_on_demand(void **state)
{
    struct shunt_arena a;
    shunt_arena_init(&a);
    assert_int_equal(shunt_arena_used(&a), 0);
    char *p = shunt_arena_alloc(&a, 1);
    *p = 'x';
    shunt_arena_reset(&a);
    shunt_arena_dispose(&a);
}

static void test_strndup_terminates_and_copies_empty(void **state)
{
    struct shunt_arena a;
    shunt_arena_init(&a);
    char *e = shunt_arena_strndup(&a, NULL, 0);
    assert_string_equal(e, "");
    char *p = shunt_arena_strndup(&a, "GET /x", 3);
    assert_string_equal(p, "GET");
    shunt_arena_dispose(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_are_aligned_and_apart),
        cmocka_unit_test(test_earlier_bytes_survive_later_allocations),
        cmocka_unit_test(test_large_allocations_get_blocks_of_their_own),
        cmocka_unit_test(test_reset_frees_the_chunks_and_starts_again_in_the_owners_buffer),
        cmocka_unit_test(test_without_a_buffer_the_first_chunk_comes_on_demand),
        cmocka_unit_test(test_strndup_terminates_and_copies_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
