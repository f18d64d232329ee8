//! The real implementations behind interposed libc functions that are not plain system calls,
//! resolved with dlsym(RTLD_NEXT) once and cached in atomics (dlsym may call calloc, so never
//! on a path that runs inside the allocator).

use core::ffi::{c_char, c_int, c_long, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

macro_rules! real {
    ($($fn_name:ident: $sym:literal => $ty:ty;)*) => {$(
        pub fn $fn_name() -> Option<$ty> {
            static P: AtomicUsize = AtomicUsize::new(0);
            let mut p = P.load(Ordering::Acquire);
            if p == 0 {
                p = unsafe { libc::dlsym(libc::RTLD_NEXT, $sym.as_ptr()) } as usize;
                if p == 0 {
                    return None;
                }
                P.store(p, Ordering::Release);
            }
            Some(unsafe { core::mem::transmute::<usize, $ty>(p) })
        }
    )*
        /// Resolves everything up front (from the constructor), so hooks rarely call dlsym.
        pub fn resolve_all() { $( let _ = $fn_name(); )* }
    };
}

pub type PthreadStart = extern "C" fn(*mut c_void) -> *mut c_void;

real! {
    dlopen: c"dlopen" => unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
    dlmopen: c"dlmopen" => unsafe extern "C" fn(c_long, *const c_char, c_int) -> *mut c_void;
    dlclose: c"dlclose" => unsafe extern "C" fn(*mut c_void) -> c_int;
    pthread_create: c"pthread_create" => unsafe extern "C" fn(*mut libc::pthread_t, *const libc::pthread_attr_t, PthreadStart, *mut c_void) -> c_int;
    execve: c"execve" => unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    execv: c"execv" => unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;
    execvp: c"execvp" => unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;
    execvpe: c"execvpe" => unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    fexecve: c"fexecve" => unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
    execveat: c"execveat" => unsafe extern "C" fn(c_int, *const c_char, *const *const c_char, *const *const c_char, c_int) -> c_int;
    setuid: c"setuid" => unsafe extern "C" fn(libc::uid_t) -> c_int;
    setgid: c"setgid" => unsafe extern "C" fn(libc::gid_t) -> c_int;
    seteuid: c"seteuid" => unsafe extern "C" fn(libc::uid_t) -> c_int;
    setegid: c"setegid" => unsafe extern "C" fn(libc::gid_t) -> c_int;
    setreuid: c"setreuid" => unsafe extern "C" fn(libc::uid_t, libc::uid_t) -> c_int;
    setregid: c"setregid" => unsafe extern "C" fn(libc::gid_t, libc::gid_t) -> c_int;
    setresuid: c"setresuid" => unsafe extern "C" fn(libc::uid_t, libc::uid_t, libc::uid_t) -> c_int;
    setresgid: c"setresgid" => unsafe extern "C" fn(libc::gid_t, libc::gid_t, libc::gid_t) -> c_int;
        setgroups: c"setgroups" => unsafe extern "C" fn(libc::size_t, *const libc::gid_t) -> c_int;
    unshare: c"unshare" => unsafe extern "C" fn(c_int) -> c_int;
    setns: c"setns" => unsafe extern "C" fn(c_int, c_int) -> c_int;
}
