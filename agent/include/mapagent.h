/* mapagent.h: take a page-state snapshot from your own code when libmapagent.so is preloaded.
 *
 *     #include <mapagent.h>
 *     ...
 *     mapagent_snapshot_if_loaded("after-init");   // a no-op without the agent
 *
 * then `mapagent dirty DIR --snapshot after-init` shows the private dirty pages at that point.
 * Nothing to link: the declaration is weak, so a program built with this header runs with or
 * without LD_PRELOAD=libmapagent.so. */
#ifndef MAPAGENT_H
#define MAPAGENT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Snapshots the state of every page of every mapping (present, swapped, copied on write,
 * exclusive, page-cache residency), labelled LABEL (may be NULL), and returns once the writer
 * thread has written it: 0 on success, -1 when the agent is not recording (disabled, inert
 * under setuid, called from a signal handler's nested context) or took longer than 30 s.
 * The label is what `--snapshot LABEL` selects; the last snapshot with a label wins.
 * Thread-safe. Not async-signal-safe: from a handler, use MAPAGENT_SNAPSHOT_SIGNAL instead. */
int mapagent_snapshot(const char *label) __attribute__((weak));

/* Samples every global named in MAPAGENT_WATCH (e.g. "current_query:str,requests:u64") now,
 * and returns once the values are written: 0, or -1 when the agent is not recording. The
 * writer reads them while the caller waits, without ever faulting (an unmapped address is
 * recorded as unreadable). `mapagent watch DIR` prints the timeline. */
int mapagent_watch_sample(void) __attribute__((weak));

static inline int mapagent_watch_sample_if_loaded(void) {
    return mapagent_watch_sample ? mapagent_watch_sample() : -1;
}

/* mapagent_snapshot when the agent is loaded, else -1 without doing anything. */
static inline int mapagent_snapshot_if_loaded(const char *label) {
    return mapagent_snapshot ? mapagent_snapshot(label) : -1;
}

#ifdef __cplusplus
}
#endif

#endif
