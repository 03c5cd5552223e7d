//! Loads filters into the kernel, in forked children.

mod common;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use berth_seccomp::notify::{self, Response};
use berth_seccomp::{compile, Filter};
use common::profile;
use serde_json::json;

/// Runs `child` in a forked process (which only makes raw syscalls) and
/// returns its wait status.
fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes syscalls and leaves with _exit, so it does
    // not touch locks other threads of the test harness may have held at fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    wait(pid)
}

fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live int.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

fn exit_code(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

fn set_no_new_privs() -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
}

/// Raw syscall returning (result, errno).
fn raw_syscall(nr: libc::c_long) -> (libc::c_long, i32) {
    // SAFETY: only used for syscalls without pointer arguments.
    let r = unsafe { libc::syscall(nr, 0, 0, 0) };
    let errno = if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    (r, errno)
}

fn load_in_child(filter: &Filter) -> Result<Option<OwnedFd>, i32> {
    if !set_no_new_privs() {
        return Err(90);
    }
    filter.load().map_err(|_| 91)
}

#[test]
fn errno_rule_takes_effect() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    })))
    .unwrap();
    let status = fork_and_wait(|| {
        if let Err(code) = load_in_child(&filter) {
            return code;
        }
        match raw_syscall(libc::SYS_getppid) {
            (-1, 77) => {}
            _ => return 1,
        }
        if raw_syscall(libc::SYS_getpid).0 <= 0 {
            return 2;
        }
        0
    });
    assert_eq!(exit_code(status), Some(0), "status {status:#x}");
}

#[test]
fn kill_process_rule_kills_with_sigsys() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    })))
    .unwrap();
    let status = fork_and_wait(|| {
        if let Err(code) = load_in_child(&filter) {
            return code;
        }
        raw_syscall(libc::SYS_getppid);
        3
    });
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
}

#[test]
fn default_errno_and_enosys_stub_in_the_kernel() {
    // Loaded with LOG and SPEC_ALLOW to exercise the flags too.
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["exit", "exit_group", "getppid", "futex_waitv", "rt_sigreturn"], "action": "SCMP_ACT_ALLOW"}
        ]
    })))
    .unwrap();
    let status = fork_and_wait(|| {
        if let Err(code) = load_in_child(&filter) {
            return code;
        }
        if raw_syscall(libc::SYS_getppid).0 <= 0 {
            return 1;
        }
        if raw_syscall(libc::SYS_getpid) != (-1, libc::EACCES) {
            return 2;
        }
        if raw_syscall(libc::SYS_futex_waitv - 1) != (-1, libc::EACCES) {
            return 3;
        }
        // Above the highest number the profile names: -ENOSYS, not the default.
        if raw_syscall(libc::SYS_futex_waitv + 20) != (-1, libc::ENOSYS) {
            return 4;
        }
        0
    });
    assert_eq!(exit_code(status), Some(0), "status {status:#x}");
}

/// Accepts one connection, giving up after a while so a broken child cannot hang the test.
fn accept_with_deadline(listener: &UnixListener) -> std::os::unix::net::UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Receives the payload and the one fd sent with it.
fn recv_with_fd(stream: &std::os::unix::net::UnixStream) -> (Vec<u8>, OwnedFd) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: all buffers in msg are live and sized as declared.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: msg was filled in by recvmsg; the cmsg macros walk its control buffer.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no ancillary data");
        assert_eq!((*cmsg).cmsg_level, libc::SOL_SOCKET);
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
        let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        OwnedFd::from_raw_fd(raw)
    };
    buf.truncate(n as usize);
    // Whatever did not come with the first segment follows as plain bytes.
    let mut rest = Vec::new();
    let mut s = stream;
    s.read_to_end(&mut rest).unwrap();
    buf.extend(rest);
    (buf, fd)
}

fn poll_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    rc == 1 && pfd.revents & libc::POLLIN != 0
}

#[test]
fn notify_listener_reaches_the_agent() {
    if !berth_seccomp::supported_actions().contains(&"SCMP_ACT_NOTIFY") {
        eprintln!("kernel without SECCOMP_RET_USER_NOTIF; skipping");
        return;
    }
    let dir = std::env::temp_dir().join(format!("berth-seccomp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();

    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "hello",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert!(filter.uses_notify());
    let state = json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": 4321,
        "metadata": "hello",
        "state": {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 4321, "bundle": "/b"}
    })
    .to_string();

    // SAFETY: as in fork_and_wait; the child only makes syscalls (connect and
    // sendmsg build their arguments on the stack).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = (|| {
            let fd = match load_in_child(&filter) {
                Ok(Some(fd)) => fd,
                Ok(None) => return 92,
                Err(code) => return code,
            };
            if berth_seccomp::send_listener(&sock, fd.as_fd(), state.as_bytes()).is_err() {
                return 93;
            }
            drop(fd);
            match raw_syscall(libc::SYS_getppid) {
                (4242, 0) => {}
                _ => return 1,
            }
            // Answered with an errno this time.
            match raw_syscall(libc::SYS_getppid) {
                (-1, libc::EXDEV) => 0,
                _ => 2,
            }
        })();
        // SAFETY: see fork_and_wait.
        unsafe { libc::_exit(code) };
    }

    let stream = accept_with_deadline(&listener);
    let (payload, fd) = recv_with_fd(&stream);
    let got: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(got.to_string(), state);

    for response in [Response::Return(4242), Response::Errno(libc::EXDEV)] {
        assert!(
            poll_readable(&fd, Duration::from_secs(20)),
            "no notification"
        );
        let n = notify::recv(fd.as_fd()).unwrap();
        assert_eq!(n.nr as libc::c_long, libc::SYS_getppid);
        assert_eq!(n.arch, 0xc000_003e);
        assert_eq!(n.pid as libc::pid_t, pid);
        assert!(notify::id_valid(fd.as_fd(), n.id));
        notify::respond(fd.as_fd(), n.id, response).unwrap();
    }
    let status = wait(pid);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(exit_code(status), Some(0), "status {status:#x}");
}

#[test]
fn containerd_profile_in_the_kernel() {
    let filter = compile(&common::containerd_profile()).unwrap();
    let status = fork_and_wait(|| {
        if let Err(code) = load_in_child(&filter) {
            return code;
        }
        if raw_syscall(libc::SYS_getppid).0 <= 0 {
            return 1;
        }
        // mount(NULL, NULL, NULL, 0, NULL): refused by the filter before the kernel looks at it.
        if raw_syscall(libc::SYS_mount) != (-1, libc::EPERM) {
            return 2;
        }
        if raw_syscall(libc::SYS_clone3) != (-1, libc::ENOSYS) {
            return 3;
        }
        if raw_syscall(500) != (-1, libc::ENOSYS) {
            return 4;
        }
        0
    });
    assert_eq!(exit_code(status), Some(0), "status {status:#x}");
}
