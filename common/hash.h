/* hash: FNV-1a 64-bit, used for the parameter-table hash and for checksums of
 * model blobs in SQLite (accidental corruption, not an adversary: TLS and file
 * permissions handle those). */
#ifndef SEFL_HASH_H
#define SEFL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_INIT 0xcbf29ce484222325ULL

/* Folds n bytes into h; start from HASH_FNV_INIT. */
uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n);

#endif
