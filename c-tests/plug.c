/* A plugin library; built several times with different PLUG names. */
#include <string.h>
#ifndef PLUG
#define PLUG plug
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
int CAT(PLUG, _data)[4096] = {1};
static const char *const CAT(PLUG, _names)[] = {"one", "two", "three"};
int CAT(PLUG, _work)(int x) { return x + (int)strlen(CAT(PLUG, _names)[x % 3]) + CAT(PLUG, _data)[0]; }
