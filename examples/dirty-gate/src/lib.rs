//! An example of gating a C library's private dirty pages in its own test suite: see
//! `tests/gate.rs`. Nothing to build here; the library under test is `c/table.c`.
