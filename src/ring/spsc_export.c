/*
 * spsc_export.c - out-of-line copies of the SPSC fast paths for FFI users.
 *
 * ferry/ring.h defines reserve/commit/flush/write/peek/release/rx_flush/read as
 * static inline so C callers pay no call overhead. Languages that bind by
 * symbol (ctypes, dlsym, Rust bindgen without inline support) need real
 * symbols: this file includes the header with FERRY_SPSC_EXPORT_ set, which
 * turns the same definitions into exported external functions.
 */
#define FERRY_SPSC_EXPORT_ 1
#include "ferry/ring.h"
