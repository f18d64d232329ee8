//! Process lifecycle: pthread_create (glibc maps the new stack behind the hooks' back), the
//! exec family (flush before the image is replaced), _exit/_Exit (flush; exit() is covered by
//! on_exit in `lifecycle`).

use crate::agent;
use crate::event::{Event, Kind};
use crate::lifecycle;
use crate::real;
use core::ffi::{c_char, c_int, c_void};
use mapagent_record::records::exit_how;

#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    th: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: real::PthreadStart,
    arg: *mut c_void,
) -> c_int {
    let Some(f) = real::pthread_create() else {
        return libc::EAGAIN;
    };
    let rec = agent::recording();
    let t0 = rec.map_or(0, |ag| ag.slow_begin());
    let r = f(th, attr, start, arg);
    if let Some(ag) = rec {
        let t = if r == 0 && !th.is_null() { *th } else { 0 };
        ag.push(Event::new(
            Kind::Thread,
            [t, r as i64 as u64, t0, 0, 0, 0, 0, 0],
        ));
        ag.slow_end();
    }
    r
}

extern "C" {
    static environ: *const *const c_char;
}

type Argv = *const *const c_char;

#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    lifecycle::before_exec(path);
    let r = match real::execve() {
        Some(f) => f(path, argv, envp),
        None => libc::syscall(libc::SYS_execve, path, argv, envp) as c_int,
    };
    lifecycle::exec_failed();
    r
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    lifecycle::before_exec(path);
    let r = match real::execv() {
        Some(f) => f(path, argv),
        None => libc::syscall(libc::SYS_execve, path, argv, environ) as c_int,
    };
    lifecycle::exec_failed();
    r
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    lifecycle::before_exec(file);
    let r = match real::execvp() {
        Some(f) => f(file, argv),
        None => {
            crate::sys::set_errno(libc::ENOSYS);
            -1
        }
    };
    lifecycle::exec_failed();
    r
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    lifecycle::before_exec(file);
    let r = match real::execvpe() {
        Some(f) => f(file, argv, envp),
        None => {
            crate::sys::set_errno(libc::ENOSYS);
            -1
        }
    };
    lifecycle::exec_failed();
    r
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    lifecycle::before_exec(c"(fexecve)".as_ptr());
    let r = match real::fexecve() {
        Some(f) => f(fd, argv, envp),
        None => {
            crate::sys::set_errno(libc::ENOSYS);
            -1
        }
    };
    lifecycle::exec_failed();
    r
}

#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: Argv,
    envp: Argv,
    flags: c_int,
) -> c_int {
    lifecycle::before_exec(path);
    let r = match real::execveat() {
        Some(f) => f(dirfd, path, argv, envp, flags),
        None => libc::syscall(libc::SYS_execveat, dirfd, path, argv, envp, flags) as c_int,
    };
    lifecycle::exec_failed();
    r
}

/// execl, execle and execlp are variadic, which stable Rust cannot define. These x86_64 stubs
/// spill the register arguments next to the stack ones and let `exec_list` walk them; glibc's
/// own execl* call its internal __execve, so without these a flush before exec would be missed.
#[cfg(target_arch = "x86_64")]
macro_rules! exec_list_stub {
    ($name:ident, $variant:literal) => {
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name(_path: *const c_char, _arg: *const c_char) -> c_int {
            core::arch::naked_asm!(
                // On entry rsp = 8 mod 16; 56 bytes keep the call below 16-byte aligned.
                "sub rsp, 56",
                "mov [rsp], rsi",
                "mov [rsp + 8], rdx",
                "mov [rsp + 16], rcx",
                "mov [rsp + 24], r8",
                "mov [rsp + 32], r9",
                "mov rsi, rsp",
                "lea rdx, [rsp + 64]",
                concat!("mov ecx, ", $variant),
                "call {imp}",
                "add rsp, 56",
                "ret",
                imp = sym exec_list,
            )
        }
    };
}

#[cfg(target_arch = "x86_64")]
exec_list_stub!(execl, 0);
#[cfg(target_arch = "x86_64")]
exec_list_stub!(execle, 1);
#[cfg(target_arch = "x86_64")]
exec_list_stub!(execlp, 2);

/// Collects a variadic argument list (five register arguments, then the stack) and execs.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn exec_list(
    path: *const c_char,
    regs: *const *const c_char,
    stack: *const *const c_char,
    variant: c_int,
) -> c_int {
    let arg = |i: usize| {
        if i < 5 {
            *regs.add(i)
        } else {
            *stack.add(i - 5)
        }
    };
    let mut n = 0usize;
    while !arg(n).is_null() {
        n += 1;
        if n > (1 << 21) {
            crate::sys::set_errno(libc::E2BIG);
            return -1;
        }
    }
    let envp: Argv = if variant == 1 {
        arg(n + 1) as Argv
    } else {
        environ
    };
    let mut small = [core::ptr::null::<c_char>(); 256];
    let bytes = (n + 1) * core::mem::size_of::<*const c_char>();
    let (argv, mapped) = if n < small.len() {
        (small.as_mut_ptr(), false)
    } else {
        let p = crate::sys::mmap(
            core::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return -1;
        }
        (p as *mut *const c_char, true)
    };
    for i in 0..n {
        *argv.add(i) = arg(i);
    }
    *argv.add(n) = core::ptr::null();
    let r = match variant {
        2 => execvp(path, argv),
        _ => execve(path, argv, envp),
    };
    let e = crate::sys::errno();
    if mapped {
        crate::sys::munmap(argv.cast(), bytes);
    }
    crate::sys::set_errno(e);
    r
}

#[no_mangle]
pub unsafe extern "C" fn _exit(code: c_int) -> ! {
    lifecycle::exiting(exit_how::UNDERSCORE_EXIT, code);
    loop {
        libc::syscall(libc::SYS_exit_group, code as libc::c_long);
    }
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(code: c_int) -> ! {
    _exit(code)
}
