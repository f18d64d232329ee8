/* Per-thread agent state. initial-exec TLS: a fixed offset from the thread pointer, no
 * __tls_get_addr, no lazy allocation when a thread first touches it (bytehound #131). */
#include <stdint.h>

struct mapagent_tls {
    uint32_t depth;  /* > 0 while agent code runs on this thread: nested hooks pass through */
    int32_t tid;     /* cached gettid(), 0 = unknown */
    uint32_t flags;  /* bit 0: this is the agent's writer thread */
    uint32_t pad;
};

static __thread struct mapagent_tls mapagent_tls_block __attribute__((tls_model("initial-exec")));

struct mapagent_tls *mapagent_tls_get(void) { return &mapagent_tls_block; }
