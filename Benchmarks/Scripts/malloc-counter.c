// An LD_PRELOAD malloc counter for a benchmark server (server-mallocs.sh builds and uses it).
//
// Counts every malloc, calloc, realloc and aligned allocation of the process (all threads), the
// bytes asked for, and the bytes held (malloc_usable_size of the blocks allocated and not freed).
// On SIGUSR2 it writes "mallocs N bytes B live L" to standard error, with no allocation of its own.
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong count, bytes;
static atomic_long live;

static void *counted(void *block, size_t asked) {
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, asked, memory_order_relaxed);
    if (block) atomic_fetch_add_explicit(&live, (long)malloc_usable_size(block), memory_order_relaxed);
    return block;
}

static void released(void *block) {
    if (block) atomic_fetch_sub_explicit(&live, (long)malloc_usable_size(block), memory_order_relaxed);
}

void *malloc(size_t size) { return counted(__libc_malloc(size), size); }
void *calloc(size_t count, size_t size) { return counted(__libc_calloc(count, size), count * size); }
void free(void *block) {
    released(block);
    __libc_free(block);
}
void *realloc(void *block, size_t size) {
    long before = block ? (long)malloc_usable_size(block) : 0;
    void *moved = __libc_realloc(block, size);
    if (moved || size == 0) atomic_fetch_sub_explicit(&live, before, memory_order_relaxed);
    return moved ? counted(moved, size) : NULL;
}
void *memalign(size_t alignment, size_t size) { return counted(__libc_memalign(alignment, size), size); }
void *aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    void *block = memalign(alignment, size);
    if (block == NULL) return 12;  // ENOMEM
    *out = block;
    return 0;
}

static void put(char *text, int *at, unsigned long value) {
    char digits[24];
    int count = 0;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value);
    while (count) text[(*at)++] = digits[--count];
}

static void report(int signal) {
    (void)signal;
    char text[128];
    int at = 0;
    long held = atomic_load(&live);
    memcpy(text, "mallocs ", 8), at = 8;
    put(text, &at, atomic_load(&count));
    memcpy(text + at, " bytes ", 7), at += 7;
    put(text, &at, atomic_load(&bytes));
    memcpy(text + at, " live ", 6), at += 6;
    if (held < 0) text[at++] = '-', held = -held;
    put(text, &at, (unsigned long)held);
    text[at++] = '\n';
    (void)!write(2, text, (size_t)at);
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
