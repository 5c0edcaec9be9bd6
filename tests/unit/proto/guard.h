/*
 * guard.h — place test input flush against an inaccessible page, so a parser reading one byte past the end
 * faults at once instead of reading whatever follows in the heap.
 */
#ifndef RINGMQ_TEST_GUARD_H
#define RINGMQ_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Copy len bytes so that the last one sits right before a PROT_NONE page and return the copy. The region is
 * reused by the next call (one live copy at a time); len must be <= the region size (64 KiB).
 */
const uint8_t *guard_copy(const void *data, size_t len);
/* A writable len-byte buffer ending at its own guard page, for checking an encoder writes no further. */
uint8_t *guard_out(size_t len);

#endif
