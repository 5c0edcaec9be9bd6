/*
 * fuzz.h — what every fuzz target shares: the libFuzzer entry points and a check that fails loudly.
 *
 * A target is a plain C file defining LLVMFuzzerTestOneInput(). It is linked either with libFuzzer (the fuzz-*
 * binaries, -Dfuzz=enabled) or with replay.c (the fuzz-* unit tests in every build), so it must not depend on
 * which: no main(), no global state that outlives one input.
 */
#ifndef RINGMQ_TEST_FUZZ_H
#define RINGMQ_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant is a crash, so libFuzzer keeps the input and the replay test fails: abort, never assert
 * (which a release build would compile out). */
#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

#endif
