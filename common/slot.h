/*
 * slot.h — client-ID hash slots, as Redis Cluster: CRC16/XMODEM of the key mod 16384. Unlike Redis Cluster
 * no {hash tag} is honoured: the whole client ID is hashed, so devices cannot choose their worker.
 * Pure functions; any process.
 */
#ifndef RINGMQ_COMMON_SLOT_H
#define RINGMQ_COMMON_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define SLOT_COUNT 16384

/* CRC16/XMODEM (poly 0x1021, init 0), as Redis Cluster's crc16: slot_crc16("123456789", 9) == 0x31C3. */
uint16_t slot_crc16(const void *buf, size_t len);
/* Slot of a client ID (the whole ID, bytes as given): slot_crc16 % SLOT_COUNT. */
uint16_t slot_of(const void *id, size_t len);
/* Redis Cluster key slot with the {hash tag} rule: if the key has a '{' followed later by a '}' with at
 * least one byte between them, only those bytes are hashed (Redis keys of the store, not client IDs). */
uint16_t slot_of_key(const void *key, size_t len);
/* Owner worker of a slot when SLOT_COUNT slots are split evenly into n_workers contiguous ranges
 * (worker k owns [k*16384/n, (k+1)*16384/n)). Returns -1 when n_workers < 1 or slot >= SLOT_COUNT. */
int slot_owner(uint16_t slot, int n_workers);
/* First slot owned by worker k (slot_first(n, n) == SLOT_COUNT); k is clamped to 0..n_workers. */
uint16_t slot_first(int k, int n_workers);

#endif
