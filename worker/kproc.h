/*
 * kproc.h — the node's Kafka process (cluster = kafka; docs/architecture.md, "Cluster over Kafka").
 *
 * Forked by the supervisor like a worker, with the index after the last worker: every worker has a mesh
 * channel to it and sees it as one more peer standing for "every other node" — its MF_SUB are the other nodes'
 * interest, an MF_PUB sent to it goes to the nodes with interest, acknowledged once Kafka holds it; in the other
 * direction it hands each record of this node's inbox to the workers with interest, and commits the inbox
 * offset once they have made it durable.
 */
#ifndef RINGMQ_WORKER_KPROC_H
#define RINGMQ_WORKER_KPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* The Kafka process's main: returns its exit status (WORKER_EXIT_CONFIG for a configuration error). */
int kproc_run(const worker_args_t *args);

/* For knodes.c, inside the Kafka process: a frame (type, a, body = id) to the worker owning client id's slot;
 * a frame (type, a, no body) to every worker, returning how many were up; an interest edge of the other nodes
 * to every worker. */
void kproc_send_owner(const char *id, size_t len, uint8_t type, uint32_t a);
unsigned kproc_send_all(uint8_t type, uint32_t a);
void kproc_tell_workers(const char *filter, size_t len, bool add);

#endif
