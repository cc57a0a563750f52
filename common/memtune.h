/* memtune: the allocator settings of the long-running sefl processes.
 *
 * Large buffers come and go all the time here (a 0.6-2.3 MB frame per task
 * and per update, decoded messages of the same size), from several threads.
 * glibc serves a block above M_MMAP_THRESHOLD (128 KB at first) with its own
 * mmap and unmaps it on free, but raises that threshold to the size of each
 * such block freed, up to 32 MB; after the first frame, frames come from the
 * heaps of the threads instead, where freed space is kept and fragments, and
 * a process holding thousands of connections grows by megabytes per busy
 * thread and frame. Fixing the threshold keeps every large block mapped on
 * its own and returned to the system when freed.
 */
#ifndef SEFL_MEMTUNE_H
#define SEFL_MEMTUNE_H

/* Blocks at least this large are mmap'd and unmapped on free. */
#define MEMTUNE_MMAP_THRESHOLD (256 << 10)

/* Applies the settings (a no-op outside glibc); call first in main. */
void memtune_init(void);

#endif
