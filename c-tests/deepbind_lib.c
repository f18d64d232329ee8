/* Built into libdeepbind.so: its own which() must win over the executable's under RTLD_DEEPBIND. */
const char *which(void) { return "library"; }
const char *call_which(void) { return which(); }
